//! How the many-vhid tests spread mastership over three hosts: vhid `v`
//! prefers host `v % 3` (advskew 0), then host `(v + 1) % 3` (40), then the
//! third (80).

/// Hosts in the layout.
pub const HOSTS: usize = 3;

/// Host `host`'s advskew for `vhid`.
pub fn skew(host: usize, vhid: u8) -> u8 {
    let rank = (host + HOSTS - usize::from(vhid) % HOSTS) % HOSTS;
    [0, 40, 80][rank]
}

/// The host that is master of `vhid` when all are up.
pub fn preferred(vhid: u8) -> usize {
    usize::from(vhid) % HOSTS
}

/// The host that takes `vhid` over when its preferred host dies.
pub fn second(vhid: u8) -> usize {
    (usize::from(vhid) + 1) % HOSTS
}
