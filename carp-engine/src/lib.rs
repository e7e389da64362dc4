//! The CARP election of one virtual host as a pure state machine.
//!
//! This crate does no I/O, reads no clock, starts no thread and draws no
//! random number. The caller feeds it inputs with the current [`Time`]:
//! - [`Engine::handle_advert`]: an advertisement carp-proto has parsed and
//!   authenticated;
//! - [`Engine::handle_timeout`]: when [`Engine::poll_timeout`] said so;
//! - [`Engine::handle_link_change`], [`Engine::step_down`],
//!   [`Engine::shutdown`], [`Engine::handle_send_result`];
//!
//! and drains what it must do:
//! - [`Engine::poll_transmit`]: adverts (already signed) and gratuitous ARPs;
//! - [`Engine::poll_event`]: state transitions with their reason and hook;
//! - [`Engine::poll_timeout`]: when to call back.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use std::time::Duration;
//! use carp_engine::{Config, Engine, Hook, State, Time, Transmit};
//! use carp_proto::{Password, VirtualHostAuth};
//!
//! let vip = IpAddr::V4(Ipv4Addr::new(10, 1, 1, 252));
//! let auth = VirtualHostAuth::new(&Password::new(b"love").unwrap(), 42, &[vip]).unwrap();
//! let config = Config::new(auth, Ipv4Addr::new(10, 1, 1, 1), 0x1234);
//! let mut engine = Engine::new(config, Time::ZERO).unwrap();
//!
//! // Start-up: INIT -> BACKUP, with the down hook.
//! let startup = engine.poll_event().unwrap();
//! assert_eq!((startup.to, startup.hook), (State::Backup, Some(Hook::Down)));
//!
//! // Nobody else advertises: at the master-down time (3 s) we take over.
//! let due = engine.poll_timeout().unwrap();
//! assert_eq!(due, Time::from_duration(Duration::from_secs(3)));
//! engine.handle_timeout(due);
//! assert_eq!(engine.poll_event().unwrap().hook, Some(Hook::Up));
//! assert_eq!(engine.poll_transmit(), Some(Transmit::GratuitousArp));
//! assert!(matches!(engine.poll_transmit(), Some(Transmit::Advert(_))));
//! ```
#![forbid(unsafe_code)]

mod config;
pub mod election;
mod engine;
pub mod fuzzing;
pub mod replay;
pub mod sim;
pub mod time;

pub use config::{Config, ConfigError};
pub use election::{Claim, TieBreak};
pub use engine::{
    AdvertOutcome, Engine, EngineStats, Hook, Reason, State, Transition, Transmit,
    DEGRADED_ADVSKEW, LEAVE_ADVBASE, LEAVE_ADVSKEW,
};
pub use replay::{Refusal, ReplayMode};
pub use time::{Interval, Time};
