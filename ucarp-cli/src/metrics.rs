//! Prometheus metrics (`--metrics ADDR:PORT`, `[daemon] metrics`; off by
//! default): `GET /metrics` answers the text exposition of the status
//! model, encoded by the `prometheus-client` crate.
//!
//! The HTTP side is deliberately tiny: one thread, one connection at a
//! time, a request head of at most [`MAX_HEAD`] bytes read within
//! [`CLIENT_TIMEOUT`], `GET /metrics` and nothing else (404 for other
//! paths, 405 for other methods, 400 for anything unreadable), and the
//! connection closed after the reply. A slow or hostile client delays
//! other scrapes by at most the timeout; the protocol thread never sees
//! it (the status is a snapshot behind a mutex).

use std::borrow::Cow;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use carp_io::{RuntimeHandle, RuntimeStatus};
use log::warn;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// Longest request head read.
pub const MAX_HEAD: usize = 8192;
/// How long a client has to send its request.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// Binds the metrics address (before `--daemonize`, so that a bad address
/// stops the start visibly).
pub fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).map_err(|e| format!("metrics: cannot listen on {addr}: {e}"))
}

/// Serves scrapes on a thread of its own.
pub fn serve(listener: TcpListener, handle: RuntimeHandle) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("ucarp-metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => answer(stream, &handle),
                    Err(e) => {
                        warn!("metrics: accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })?;
    Ok(())
}

fn answer(mut stream: TcpStream, handle: &RuntimeHandle) {
    // The head is read within CLIENT_TIMEOUT in all, and the reply (a few
    // KiB: one write) is written within CLIENT_TIMEOUT.
    let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
    let (status, body, content_type) = match read_head(&mut stream) {
        Err(why) => ("400 Bad Request", format!("{why}\n"), "text/plain"),
        Ok(head) => route(&head, handle),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes());
}

/// The reply to a request head: status line, body, content type.
pub fn route(head: &str, handle: &RuntimeHandle) -> (&'static str, String, &'static str) {
    let mut words = head.lines().next().unwrap_or("").split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            render(&handle.status()),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        ("GET", _) => ("404 Not Found", "only /metrics here\n".into(), "text/plain"),
        _ => (
            "405 Method Not Allowed",
            "only GET /metrics\n".into(),
            "text/plain",
        ),
    }
}

/// Reads up to the blank line that ends the head: bounded in size and time.
fn read_head(stream: &mut TcpStream) -> Result<String, &'static str> {
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("request not received in time");
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(_) => return Err("request not received in time"),
        }
        if head.len() > MAX_HEAD {
            return Err("request head too long");
        }
    }
    String::from_utf8(head).map_err(|_| "request is not UTF-8")
}

/// The text exposition of a status snapshot.
pub fn render(status: &RuntimeStatus) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot(status.clone())));
    let mut out = String::new();
    if prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).is_err() {
        return "# encoding failed\n".into();
    }
    out
}

#[derive(Debug)]
struct Snapshot(RuntimeStatus);

type Labels = Vec<(Cow<'static, str>, String)>;

/// One metric family: name, help, type, and its samples.
struct Family<'a> {
    name: &'a str,
    help: &'a str,
    kind: MetricType,
    samples: Vec<(Labels, f64)>,
}

impl Family<'_> {
    fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(self.name, self.help, None, self.kind)?;
        for (labels, value) in &self.samples {
            let sample = metric.encode_family(labels)?;
            match self.kind {
                MetricType::Counter => ConstCounter::new(*value as u64).encode(sample)?,
                _ => ConstGauge::new(*value).encode(sample)?,
            }
        }
        Ok(())
    }
}

fn vhost_labels(v: &carp_io::VirtualHostStatus) -> Labels {
    vec![
        (Cow::Borrowed("interface"), v.interface.clone()),
        (Cow::Borrowed("vhid"), v.vhid.to_string()),
    ]
}

fn with(mut labels: Labels, key: &'static str, value: impl Into<String>) -> Labels {
    labels.push((Cow::Borrowed(key), value.into()));
    labels
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for family in families(&self.0) {
            family.encode(&mut encoder)?;
        }
        Ok(())
    }
}

fn families(status: &RuntimeStatus) -> Vec<Family<'static>> {
    let vhosts = &status.virtual_hosts;
    let per_vhost = |f: &dyn Fn(&carp_io::VirtualHostStatus) -> f64| -> Vec<(Labels, f64)> {
        vhosts.iter().map(|v| (vhost_labels(v), f(v))).collect()
    };
    let mut states = Vec::new();
    for v in vhosts {
        for state in ["INIT", "BACKUP", "MASTER"] {
            let on = v.state().to_string() == state;
            states.push((
                with(vhost_labels(v), "state", state),
                f64::from(u8::from(on)),
            ));
        }
    }
    let mut rejected = Vec::new();
    for v in vhosts {
        for (cause, n) in &v.counters.rejected {
            rejected.push((with(vhost_labels(v), "cause", *cause), *n as f64));
        }
    }
    let mut unclaimed = Vec::new();
    for i in &status.interfaces {
        // Losses are what an operator alerts on: their series exist from
        // the start (at 0), not only after the first one.
        let mut causes = i.rejected.clone();
        for cause in carp_io::InterfaceStatus::LOSSES {
            causes.entry(cause).or_insert(0);
        }
        for (cause, n) in &causes {
            let labels = vec![
                (Cow::Borrowed("interface"), i.name.clone()),
                (Cow::Borrowed("cause"), cause.to_string()),
            ];
            unclaimed.push((labels, *n as f64));
        }
    }
    let mut script_success = Vec::new();
    for v in vhosts {
        if let Some(last) = &v.hooks.last {
            let labels = with(vhost_labels(v), "hook", last.hook);
            script_success.push((labels, f64::from(u8::from(last.success))));
        }
    }
    let version = vec![(
        vec![(
            Cow::Borrowed("version"),
            env!("CARGO_PKG_VERSION").to_string(),
        )],
        1.0,
    )];
    let gauge = MetricType::Gauge;
    let counter = MetricType::Counter;
    vec![
        Family {
            name: "ucarp_build_info",
            help: "The running version.",
            kind: gauge,
            samples: version,
        },
        Family {
            name: "ucarp_vhost_state",
            help: "1 for the state a virtual host is in.",
            kind: gauge,
            samples: states,
        },
        Family {
            name: "ucarp_vhost_state_seconds",
            help: "Time in the current state.",
            kind: gauge,
            samples: per_vhost(&|v| v.in_state_for().as_secs_f64()),
        },
        Family {
            name: "ucarp_vhost_transitions",
            help: "State transitions.",
            kind: counter,
            samples: per_vhost(&|v| v.counters.transitions as f64),
        },
        Family {
            name: "ucarp_vhost_adverts_sent",
            help: "Advertisements sent.",
            kind: counter,
            samples: per_vhost(&|v| v.counters.sent as f64),
        },
        Family {
            name: "ucarp_vhost_adverts_received",
            help: "Advertisements received and accepted.",
            kind: counter,
            samples: per_vhost(&|v| v.counters.accepted as f64),
        },
        Family {
            name: "ucarp_vhost_send_errors",
            help: "Advertisements that could not be sent.",
            kind: counter,
            samples: per_vhost(&|v| v.counters.send_errors as f64),
        },
        Family {
            name: "ucarp_vhost_arps_sent",
            help: "Gratuitous ARPs and neighbour advertisements sent.",
            kind: counter,
            samples: per_vhost(&|v| v.counters.arps_sent as f64),
        },
        Family {
            name: "ucarp_vhost_rejected",
            help: "Received packets rejected, by cause.",
            kind: counter,
            samples: rejected,
        },
        Family {
            name: "ucarp_vhost_replays_tolerated",
            help: "Adverts the replay rules refuse, accepted in permissive mode.",
            kind: counter,
            samples: per_vhost(&|v| v.counters.replays_tolerated as f64),
        },
        Family {
            name: "ucarp_interface_rejected",
            help: "Packets refused or lost on the interface before any virtual host took them, by cause (malformed, wrong_vhid, other_group, receive_overflow, socket_overflow, ...).",
            kind: counter,
            samples: unclaimed,
        },
        Family {
            name: "ucarp_interface_up",
            help: "1 while the interface is up with carrier.",
            kind: gauge,
            samples: status
                .interfaces
                .iter()
                .map(|i| {
                    (
                        vec![(Cow::Borrowed("interface"), i.name.clone())],
                        f64::from(u8::from(i.link_up)),
                    )
                })
                .collect(),
        },
        Family {
            name: "ucarp_vhost_master_down_seconds",
            help: "How long a backup waits for a silent master.",
            kind: gauge,
            samples: per_vhost(&|v| v.master_down.as_secs_f64()),
        },
        Family {
            name: "ucarp_vhost_demote",
            help: "The demotion advertised (0 when healthy).",
            kind: gauge,
            samples: per_vhost(&|v| f64::from(v.demote)),
        },
        Family {
            name: "ucarp_vhost_script_running",
            help: "1 while an up or down script runs.",
            kind: gauge,
            samples: per_vhost(&|v| f64::from(u8::from(v.hooks.running.is_some()))),
        },
        Family {
            name: "ucarp_vhost_script_last_success",
            help: "1 if the last script run exited 0.",
            kind: gauge,
            samples: script_success,
        },
    ]
}
