//! IEEE 802.1AX Link Aggregation Control Protocol: the per-port state
//! machines, aggregator selection and the Marker responder.
//!
//! Time is an argument: the caller reports carrier changes
//! ([`Lacp::set_port_enabled`]) and received slow-protocol frames
//! ([`Lacp::handle_frame`]), calls [`Lacp::handle_timeout`] when
//! [`Lacp::poll_timeout`] is due, and drains the frames to send with
//! [`Lacp::poll_transmit`]. Every 100 ms tick runs the machines of every
//! port in the kernel's fixed order: Receive, Periodic Transmission,
//! Selection, Mux, Transmit, Churn Detection (`bond_3ad_state_machine_handler`).
//!
//! Departures from the standard, each following the Linux bond:
//! - The default (administrative) partner is passive, long timeout,
//!   individual, so that a passive port facing a passive partner sends
//!   nothing (the kernel's default partner is active and makes a passive
//!   port transmit).
//! - A port goes to collecting/distributing only in the active aggregator.
//! - Standby selection is not used; ports of other aggregators stay ATTACHED
//!   and, as in the kernel, out of sync until theirs becomes the active one.

pub mod wire;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::AdSelect;
use crate::options::MacAddr;
use crate::timer::Timer;
use wire::{Lacpdu, MarkerKind, MarkerPdu, PortInfo, PortState, SlowError, SlowPdu};

/// Fast periodic time (802.1AX 6.4.4).
pub const FAST_PERIODIC: Duration = Duration::from_secs(1);
/// Slow periodic time.
pub const SLOW_PERIODIC: Duration = Duration::from_secs(30);
/// Short timeout time.
pub const SHORT_TIMEOUT: Duration = Duration::from_secs(3);
/// Long timeout time.
pub const LONG_TIMEOUT: Duration = Duration::from_secs(90);
/// Churn detection time.
pub const CHURN_DETECTION: Duration = Duration::from_secs(60);
/// Aggregate wait time.
pub const AGGREGATE_WAIT: Duration = Duration::from_secs(2);
/// Interval of the state-machine tick (as the kernel's `AD_TICKS_PER_SEC`).
pub const TICK: Duration = Duration::from_millis(100);
/// At most this many LACPDUs per port per second (802.1AX 6.4.16).
pub const MAX_TX_PER_SEC: usize = 3;
/// At most this many frames wait to be sent (Marker responses beyond it are
/// not answered).
const MAX_QUEUED_TX: usize = 64;

/// Receive machine (802.1AX-2014 6.4.12, figure 6-18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RxState {
    /// INITIALIZE
    Initialize,
    /// PORT_DISABLED
    PortDisabled,
    /// EXPIRED
    Expired,
    /// LACP_DISABLED
    LacpDisabled,
    /// DEFAULTED
    Defaulted,
    /// CURRENT
    Current,
}

/// Periodic Transmission machine (6.4.13, figure 6-19).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeriodicState {
    /// NO_PERIODIC
    NoPeriodic,
    /// FAST_PERIODIC
    FastPeriodic,
    /// SLOW_PERIODIC
    SlowPeriodic,
}

/// Mux machine (6.4.15, figures 6-21 coupled and 6-22 independent control).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MuxState {
    /// DETACHED
    Detached,
    /// WAITING
    Waiting,
    /// ATTACHED
    Attached,
    /// COLLECTING (independent control)
    Collecting,
    /// DISTRIBUTING (independent control)
    Distributing,
    /// COLLECTING_DISTRIBUTING (coupled control)
    CollectingDistributing,
}

/// Churn Detection machines (6.4.17, figures 6-23 and 6-24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChurnState {
    /// NO_ACTOR_CHURN / NO_PARTNER_CHURN
    None,
    /// ACTOR_CHURN_MONITOR / PARTNER_CHURN_MONITOR
    Monitoring,
    /// ACTOR_CHURN / PARTNER_CHURN
    Churned,
}

impl ChurnState {
    /// The kernel's /proc spelling.
    pub fn proc_name(self) -> &'static str {
        match self {
            ChurnState::None => "none",
            ChurnState::Monitoring => "monitoring",
            ChurnState::Churned => "churned",
        }
    }
}

/// Selection result of a port (6.4.8 `Selected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selected {
    Unselected,
    Selected,
}

/// Per-port counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortCounters {
    /// LACPDUs received.
    pub lacpdu_rx: u64,
    /// LACPDUs sent.
    pub lacpdu_tx: u64,
    /// Marker PDUs received (Information).
    pub marker_rx: u64,
    /// Marker Information PDUs sent (xbond never initiates).
    pub marker_tx: u64,
    /// Marker Responses received.
    pub marker_response_rx: u64,
    /// Marker Responses sent.
    pub marker_response_tx: u64,
    /// Slow-protocol frames of another protocol.
    pub unknown_rx: u64,
    /// Malformed LACP/Marker frames.
    pub illegal_rx: u64,
    /// LACPDUs ignored because the port had no carrier.
    pub ignored_rx: u64,
    /// Slow-protocol frames beyond [`RX_BUDGET`] in a second, dropped unread.
    #[serde(default)]
    pub over_budget_rx: u64,
}

/// Slow-protocol frames a port reads in a second; the rest of a flood is
/// counted and dropped unparsed, so that one port's flood costs bounded
/// work and cannot delay the others. A partner sends at most 3 LACPDUs a
/// second (802.1AX 6.4.16) and a Marker PDU now and then.
pub const RX_BUDGET: u32 = 100;

/// What the protocol needs to know about a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// Source MAC for the port's PDUs (its permanent address).
    pub mac: MacAddr,
    /// Link speed in Mb/s.
    pub speed_mbps: Option<u32>,
    /// Full duplex.
    pub full_duplex: Option<bool>,
    /// Port priority (lower is preferred).
    pub port_priority: u16,
    /// Name, for the fallback order.
    pub name: String,
}

/// Bond-wide LACP settings, with the kernel's option names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LacpConfig {
    /// `lacp_rate fast`: ask the partner for a PDU every second.
    pub fast: bool,
    /// `lacp_active on`.
    pub active: bool,
    /// `ad_select`.
    pub ad_select: AdSelect,
    /// `ad_actor_system` (default: the bond MAC).
    pub system: MacAddr,
    /// `ad_actor_sys_prio`.
    pub system_priority: u16,
    /// `ad_user_port_key` (upper 10 bits of the key).
    pub user_port_key: u16,
    /// `coupled_control`.
    pub coupled: bool,
    /// `min_links`.
    pub min_links: u32,
    /// `lacp_fallback = "active-backup"`.
    pub fallback: bool,
}

#[derive(Debug, Clone)]
struct Port {
    spec: PortSpec,
    enabled: bool,
    actor: PortInfo,
    partner: PortInfo,
    rx: RxState,
    periodic: PeriodicState,
    mux: MuxState,
    actor_churn: ChurnState,
    partner_churn: ChurnState,
    actor_churn_count: u32,
    partner_churn_count: u32,
    selected: Selected,
    aggregator: Option<usize>,
    ntt: bool,
    current_while: Timer,
    periodic_timer: Timer,
    wait_while: Timer,
    actor_churn_timer: Timer,
    partner_churn_timer: Timer,
    tx_times: VecDeque<Instant>,
    /// Start of the current second of receive budget, and frames read in it.
    rx_window: Option<(Instant, u32)>,
    counters: PortCounters,
}

/// Kernel speed code in the key (`__get_link_speed`).
fn speed_code(mbps: Option<u32>) -> u16 {
    match mbps.unwrap_or(0) {
        0 => 0,
        1 => 1,
        10 => 2,
        100 => 3,
        1000 => 4,
        2500 => 5,
        5000 => 6,
        10000 => 7,
        14000 => 8,
        20000 => 9,
        25000 => 10,
        40000 => 11,
        50000 => 12,
        56000 => 13,
        100000 => 14,
        200000 => 15,
        400000 => 16,
        800000 => 17,
        _ => 0,
    }
}

/// The operational key: `ad_user_port_key` in the upper 10 bits, then the
/// kernel's speed code and the duplex bit.
fn port_key(cfg: &LacpConfig, speed_mbps: Option<u32>, full_duplex: Option<bool>) -> u16 {
    let full = u16::from(full_duplex.unwrap_or(true));
    (cfg.user_port_key << 6) | (speed_code(speed_mbps) << 1) | full
}

/// The default partner: passive, long timeout, individual.
fn default_partner() -> PortInfo {
    PortInfo {
        system_priority: 0xffff,
        system: MacAddr::default(),
        key: 1,
        port_priority: 0xff,
        port: 1,
        state: PortState(0),
    }
}

/// One aggregator's view, for status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregatorInfo {
    /// Aggregator ID (1-based).
    pub id: u16,
    /// Ports attached.
    pub ports: u16,
    /// Actor key.
    pub actor_key: u16,
    /// Partner key.
    pub partner_key: u16,
    /// Partner system MAC.
    pub partner_mac: MacAddr,
}

/// One port's view, for status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatus {
    /// Aggregator ID, if selected.
    pub aggregator_id: Option<u16>,
    /// Actor churn state.
    pub actor_churn: ChurnState,
    /// Partner churn state.
    pub partner_churn: ChurnState,
    /// Actor churned count.
    pub actor_churned: u32,
    /// Partner churned count.
    pub partner_churned: u32,
    /// Actor system priority.
    pub actor_system_priority: u16,
    /// Actor system MAC.
    pub actor_system: MacAddr,
    /// Actor operational key.
    pub actor_key: u16,
    /// Actor port priority.
    pub actor_port_priority: u16,
    /// Actor port number.
    pub actor_port: u16,
    /// Actor state byte.
    pub actor_state: u8,
    /// Partner system priority.
    pub partner_system_priority: u16,
    /// Partner system MAC.
    pub partner_system: MacAddr,
    /// Partner operational key.
    pub partner_key: u16,
    /// Partner port priority.
    pub partner_port_priority: u16,
    /// Partner port number.
    pub partner_port: u16,
    /// Partner state byte.
    pub partner_state: u8,
    /// Receive machine state.
    pub rx: RxState,
    /// Mux machine state.
    pub mux: MuxState,
    /// Counters.
    pub counters: PortCounters,
}

/// The LACP state of a bond.
#[derive(Debug)]
pub struct Lacp {
    cfg: LacpConfig,
    ports: Vec<Port>,
    active_agg: Option<usize>,
    fallback_port: Option<usize>,
    tick: Timer,
    out: VecDeque<(usize, Vec<u8>)>,
    changed: bool,
}

impl Lacp {
    /// A bond's LACP with every port disabled (no carrier yet).
    pub fn new(cfg: LacpConfig, ports: Vec<PortSpec>, now: Instant) -> Lacp {
        let ports = ports
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                let mut state = PortState::default();
                state.set(PortState::ACTIVITY, cfg.active);
                state.set(PortState::TIMEOUT, cfg.fast);
                state.set(PortState::AGGREGATION, true);
                let key = port_key(&cfg, spec.speed_mbps, spec.full_duplex);
                Port {
                    actor: PortInfo {
                        system_priority: cfg.system_priority,
                        system: cfg.system,
                        key,
                        port_priority: spec.port_priority,
                        port: i as u16 + 1,
                        state,
                    },
                    spec,
                    enabled: false,
                    partner: default_partner(),
                    rx: RxState::Initialize,
                    periodic: PeriodicState::NoPeriodic,
                    mux: MuxState::Detached,
                    actor_churn: ChurnState::Monitoring,
                    partner_churn: ChurnState::Monitoring,
                    actor_churn_count: 0,
                    partner_churn_count: 0,
                    selected: Selected::Unselected,
                    aggregator: None,
                    ntt: false,
                    current_while: Timer::Stopped,
                    periodic_timer: Timer::Stopped,
                    wait_while: Timer::Stopped,
                    actor_churn_timer: Timer::start(now, CHURN_DETECTION),
                    partner_churn_timer: Timer::start(now, CHURN_DETECTION),
                    tx_times: VecDeque::with_capacity(MAX_TX_PER_SEC + 1),
                    rx_window: None,
                    counters: PortCounters::default(),
                }
            })
            .collect();
        let mut l = Lacp {
            cfg,
            ports,
            active_agg: None,
            fallback_port: None,
            tick: Timer::start(now, TICK),
            out: VecDeque::new(),
            changed: true,
        };
        for p in 0..l.ports.len() {
            l.rx_enter(p, RxState::PortDisabled, now);
        }
        l
    }

    /// Carrier of port `p` (after up/down delays).
    pub fn set_port_enabled(&mut self, p: usize, enabled: bool, now: Instant) {
        let Some(port) = self.ports.get_mut(p) else {
            return;
        };
        if port.enabled == enabled {
            return;
        }
        port.enabled = enabled;
        if enabled {
            // A port coming up starts churn monitoring afresh.
            port.actor_churn = ChurnState::Monitoring;
            port.partner_churn = ChurnState::Monitoring;
            port.actor_churn_timer = Timer::start(now, CHURN_DETECTION);
            port.partner_churn_timer = Timer::start(now, CHURN_DETECTION);
            let next = if self.cfg_lacp_enabled() {
                RxState::Expired
            } else {
                RxState::LacpDisabled
            };
            self.rx_enter(p, next, now);
        } else {
            self.rx_enter(p, RxState::PortDisabled, now);
        }
        self.run(now);
    }

    /// The link speed or duplex of port `p` changed (read when the link
    /// comes up): the key follows, and a port whose key changed is selected
    /// again, as the kernel's `ad_update_actor_keys` does.
    pub fn set_port_speed(
        &mut self,
        p: usize,
        speed_mbps: Option<u32>,
        full_duplex: Option<bool>,
        now: Instant,
    ) {
        let key = port_key(&self.cfg, speed_mbps, full_duplex);
        let Some(port) = self.ports.get_mut(p) else {
            return;
        };
        port.spec.speed_mbps = speed_mbps;
        port.spec.full_duplex = full_duplex;
        if port.actor.key != key {
            port.actor.key = key;
            port.selected = Selected::Unselected;
            port.ntt = true;
            self.run(now);
        }
    }

    /// New options while running (`lacp_rate`, `lacp_active`,
    /// `ad_actor_sys_prio`, `min_links`, the ports' priorities): the ports
    /// carry them in their next LACPDU, sent at once. A new system priority
    /// is a new actor system for the partner: the ports select again.
    pub fn reconfigure(&mut self, cfg: LacpConfig, port_prios: &[u16], now: Instant) {
        let new_system = cfg.system_priority != self.cfg.system_priority;
        for (i, port) in self.ports.iter_mut().enumerate() {
            let prio = port_prios
                .get(i)
                .copied()
                .unwrap_or(port.spec.port_priority);
            let mut state = port.actor.state;
            state.set(PortState::ACTIVITY, cfg.active);
            state.set(PortState::TIMEOUT, cfg.fast);
            if state != port.actor.state || prio != port.actor.port_priority || new_system {
                port.actor.state = state;
                port.actor.port_priority = prio;
                port.spec.port_priority = prio;
                port.actor.system_priority = cfg.system_priority;
                port.ntt = true;
            }
            if new_system {
                port.selected = Selected::Unselected;
            }
        }
        self.cfg = cfg;
        self.changed = true;
        self.run(now);
    }

    /// Takes over `old`'s state after slaves were added or released
    /// (`xbond ctl enslave` / `release`): `map[i]` is the new position of
    /// old port `i` (`None`: released). Kept ports keep their machines,
    /// partner, port number and aggregator, so their partner sees nothing
    /// change; a new port gets the lowest port number not in use and starts
    /// as a port does. Aggregators are relabelled densely; a released port's
    /// own aggregator goes on under another label while it has ports.
    pub fn adopt(&mut self, old: &Lacp, map: &[Option<usize>]) {
        self.cfg = old.cfg.clone();
        let n = self.ports.len();
        let mut adopted = vec![false; n];
        for (i, to) in map.iter().enumerate() {
            if let (Some(j), Some(p)) = (to, old.ports.get(i)) {
                if *j < n {
                    let spec = self.ports[*j].spec.clone();
                    self.ports[*j] = p.clone();
                    self.ports[*j].spec.port_priority = spec.port_priority;
                    adopted[*j] = true;
                }
            }
        }
        // New ports: the system of the old engine, a free port number.
        let mut used: Vec<u16> = (0..n)
            .filter(|&j| adopted[j])
            .map(|j| self.ports[j].actor.port)
            .collect();
        for j in (0..n).filter(|&j| !adopted[j]) {
            let number = (1..).find(|k| !used.contains(k)).unwrap_or(j as u16 + 1);
            used.push(number);
            let port = &mut self.ports[j];
            port.actor.port = number;
            port.actor.system = self.cfg.system;
            port.actor.system_priority = self.cfg.system_priority;
        }
        // Aggregator labels, densely: a label keeps its group together.
        let mut relabel: Vec<(usize, usize)> = Vec::new();
        for (port, kept) in self.ports.iter_mut().zip(&adopted) {
            let Some(a) = port.aggregator.filter(|_| *kept) else {
                port.aggregator = None;
                continue;
            };
            let label = match relabel.iter().find(|(o, _)| *o == a) {
                Some((_, l)) => *l,
                None => {
                    let l = (0..n)
                        .find(|l| !relabel.iter().any(|(_, x)| x == l))
                        .unwrap_or(0);
                    relabel.push((a, l));
                    l
                }
            };
            port.aggregator = Some(label);
        }
        self.active_agg = old
            .active_agg
            .and_then(|a| relabel.iter().find(|(o, _)| *o == a).map(|(_, l)| *l));
        self.fallback_port = old
            .fallback_port
            .and_then(|p| map.get(p).copied().flatten());
        self.tick = old.tick;
        self.changed = true;
    }

    fn cfg_lacp_enabled(&self) -> bool {
        true
    }

    /// A slow-protocol frame received on port `p`.
    pub fn handle_frame(&mut self, p: usize, frame: &[u8], now: Instant) -> Result<(), SlowError> {
        let Some(port) = self.ports.get_mut(p) else {
            return Ok(());
        };
        match &mut port.rx_window {
            Some((start, n)) if now.saturating_duration_since(*start) < Duration::from_secs(1) => {
                if *n >= RX_BUDGET {
                    port.counters.over_budget_rx += 1;
                    return Ok(());
                }
                *n += 1;
            }
            w => *w = Some((now, 1)),
        }
        let pdu = match wire::parse(frame) {
            Ok(pdu) => pdu,
            Err(e) => {
                let c = &mut self.ports[p].counters;
                if e.is_unknown() {
                    c.unknown_rx += 1;
                } else {
                    c.illegal_rx += 1;
                }
                return Err(e);
            }
        };
        match pdu {
            SlowPdu::Lacp(pdu) => {
                self.ports[p].counters.lacpdu_rx += 1;
                // Our own LACPDU come back (two ports of this bond cabled
                // together, or a reflecting switch): never a partner.
                if pdu.actor.system == self.cfg.system
                    && pdu.actor.system_priority == self.cfg.system_priority
                {
                    self.ports[p].counters.illegal_rx += 1;
                    return Err(SlowError::Loopback);
                }
                // LACPDUs are ignored while the port has no carrier.
                if !self.ports[p].enabled {
                    self.ports[p].counters.ignored_rx += 1;
                    return Ok(());
                }
                self.rx_pdu(p, &pdu, now);
                self.run(now);
            }
            SlowPdu::Marker(m) => match m.kind {
                MarkerKind::Information => {
                    let port = &mut self.ports[p];
                    port.counters.marker_rx += 1;
                    // Answered, but not without bound: a flood of requests
                    // must not pile up frames.
                    if port.enabled && self.out.len() < MAX_QUEUED_TX {
                        let resp = MarkerPdu {
                            kind: MarkerKind::Response,
                            ..m
                        };
                        self.out.push_back((p, resp.emit(port.spec.mac)));
                        port.counters.marker_response_tx += 1;
                    }
                }
                MarkerKind::Response => self.ports[p].counters.marker_response_rx += 1,
            },
        }
        Ok(())
    }

    /// Runs the machines when the tick is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.tick.due(now) {
            self.tick = Timer::start(now, TICK);
            self.run(now);
        }
    }

    /// When [`Lacp::handle_timeout`] is next due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.tick {
            Timer::Running { expires_at } => Some(expires_at),
            Timer::Stopped => None,
        }
    }

    /// The next PDU to send: (port, whole frame).
    pub fn poll_transmit(&mut self) -> Option<(usize, Vec<u8>)> {
        self.out.pop_front()
    }

    /// Whether the set of collecting/distributing ports or the carrier
    /// changed since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Ports that carry traffic now (distributing in the active aggregator,
    /// or the fallback port).
    pub fn tx_ports(&self) -> impl Iterator<Item = usize> + '_ {
        self.ports.iter().enumerate().filter_map(move |(i, p)| {
            let dist = p.actor.state.has(PortState::DISTRIBUTING)
                && p.aggregator == self.active_agg
                && p.aggregator.is_some();
            (dist || self.fallback_port == Some(i)).then_some(i)
        })
    }

    /// Whether frames received on `p` are delivered.
    pub fn collecting(&self, p: usize) -> bool {
        self.ports.get(p).is_some_and(|port| {
            (port.actor.state.has(PortState::COLLECTING)
                && port.aggregator == self.active_agg
                && port.aggregator.is_some())
                || self.fallback_port == Some(p)
        })
    }

    /// The bond's carrier: an active aggregator with a partner and at least
    /// `min_links` (and at least one) distributing ports, or a fallback port.
    pub fn carrier(&self) -> bool {
        if self.fallback_port.is_some() {
            return true;
        }
        let Some(a) = self.active_agg else {
            return false;
        };
        let has_partner = self.agg_has_partner(a);
        let n = self.tx_ports().count() as u32;
        has_partner && n >= self.cfg.min_links.max(1)
    }

    /// The port carrying traffic in fallback mode, if any.
    pub fn fallback_port(&self) -> Option<usize> {
        self.fallback_port
    }

    /// The active aggregator's info.
    pub fn active_aggregator(&self) -> Option<AggregatorInfo> {
        let a = self.active_agg?;
        Some(self.agg_info(a))
    }

    fn agg_info(&self, a: usize) -> AggregatorInfo {
        let members: Vec<&Port> = self
            .ports
            .iter()
            .filter(|p| p.aggregator == Some(a))
            .collect();
        let first = members.first();
        AggregatorInfo {
            id: a as u16 + 1,
            ports: members.len() as u16,
            actor_key: first.map_or(0, |p| p.actor.key),
            partner_key: first.map_or(0, |p| p.partner.key),
            partner_mac: first.map_or(MacAddr::default(), |p| p.partner.system),
        }
    }

    /// A port's status.
    pub fn port_status(&self, p: usize) -> Option<PortStatus> {
        let port = self.ports.get(p)?;
        Some(PortStatus {
            aggregator_id: port.aggregator.map(|a| a as u16 + 1),
            actor_churn: port.actor_churn,
            partner_churn: port.partner_churn,
            actor_churned: port.actor_churn_count,
            partner_churned: port.partner_churn_count,
            actor_system_priority: port.actor.system_priority,
            actor_system: port.actor.system,
            actor_key: port.actor.key,
            actor_port_priority: port.actor.port_priority,
            actor_port: port.actor.port,
            actor_state: port.actor.state.0,
            partner_system_priority: port.partner.system_priority,
            partner_system: port.partner.system,
            partner_key: port.partner.key,
            partner_port_priority: port.partner.port_priority,
            partner_port: port.partner.port,
            partner_state: port.partner.state.0,
            rx: port.rx,
            mux: port.mux,
            counters: port.counters,
        })
    }

    /// The settings.
    pub fn config(&self) -> &LacpConfig {
        &self.cfg
    }

    // ---- the machines -------------------------------------------------

    /// One pass of every machine over every port, in the kernel's order.
    fn run(&mut self, now: Instant) {
        let before = self.snapshot();
        for p in 0..self.ports.len() {
            self.rx_timers(p, now);
            self.periodic_machine(p, now);
        }
        self.selection(now);
        for p in 0..self.ports.len() {
            self.mux_machine(p, now);
        }
        for p in 0..self.ports.len() {
            self.tx_machine(p, now);
            self.churn_machine(p, now);
        }
        self.update_fallback();
        if self.snapshot() != before {
            self.changed = true;
        }
    }

    fn snapshot(&self) -> (Vec<usize>, Vec<bool>, bool) {
        (
            self.tx_ports().collect(),
            (0..self.ports.len()).map(|p| self.collecting(p)).collect(),
            self.carrier(),
        )
    }

    /// Receive machine: entering a state (figure 6-18).
    fn rx_enter(&mut self, p: usize, state: RxState, now: Instant) {
        let fast = self.cfg.fast;
        let port = &mut self.ports[p];
        port.rx = state;
        match state {
            RxState::Initialize => {
                port.selected = Selected::Unselected;
                port.partner = default_partner();
                port.actor.state.set(PortState::EXPIRED, false);
            }
            RxState::PortDisabled => {
                port.partner.state.set(PortState::SYNCHRONIZATION, false);
                port.current_while = Timer::Stopped;
                port.selected = Selected::Unselected;
                port.actor.state.set(PortState::EXPIRED, false);
            }
            RxState::LacpDisabled => {
                port.selected = Selected::Unselected;
                port.partner = default_partner();
                port.partner.state.set(PortState::AGGREGATION, false);
                port.actor.state.set(PortState::EXPIRED, false);
            }
            RxState::Expired => {
                port.partner.state.set(PortState::SYNCHRONIZATION, false);
                port.partner.state.set(PortState::TIMEOUT, true);
                port.current_while = Timer::start(now, SHORT_TIMEOUT);
                port.actor.state.set(PortState::EXPIRED, true);
                // Losing the partner starts churn monitoring afresh, for both
                // machines (as the kernel does at EXPIRED).
                port.partner_churn = ChurnState::Monitoring;
                port.partner_churn_timer = Timer::start(now, CHURN_DETECTION);
                port.actor_churn = ChurnState::Monitoring;
                port.actor_churn_timer = Timer::start(now, CHURN_DETECTION);
            }
            RxState::Defaulted => {
                // update_Default_Selected, recordDefault.
                let d = default_partner();
                if !same_link_partner(&port.partner, &d) {
                    port.selected = Selected::Unselected;
                }
                port.partner = d;
                port.actor.state.set(PortState::DEFAULTED, true);
                port.actor.state.set(PortState::EXPIRED, false);
                port.current_while = Timer::Stopped;
            }
            RxState::Current => {
                port.actor.state.set(PortState::EXPIRED, false);
                let t = if fast { SHORT_TIMEOUT } else { LONG_TIMEOUT };
                port.current_while = Timer::start(now, t);
            }
        }
    }

    /// Receive machine: timer transitions, run each tick.
    fn rx_timers(&mut self, p: usize, now: Instant) {
        let port = &self.ports[p];
        if !port.current_while.due(now) {
            return;
        }
        match port.rx {
            RxState::Current => self.rx_enter(p, RxState::Expired, now),
            RxState::Expired => self.rx_enter(p, RxState::Defaulted, now),
            _ => {}
        }
    }

    /// Receive machine: a LACPDU arrives (CURRENT: update_Selected,
    /// update_NTT, recordPDU).
    fn rx_pdu(&mut self, p: usize, pdu: &Lacpdu, now: Instant) {
        let port = &mut self.ports[p];
        if matches!(
            port.rx,
            RxState::PortDisabled | RxState::Initialize | RxState::LacpDisabled
        ) {
            return;
        }
        // update_Selected: a different partner means reselection.
        if !same_link_partner(&port.partner, &pdu.actor) {
            port.selected = Selected::Unselected;
        }
        // update_NTT: the partner's view of us is stale.
        let theirs = &pdu.partner;
        let mine = &port.actor;
        let mask = PortState::ACTIVITY
            | PortState::TIMEOUT
            | PortState::SYNCHRONIZATION
            | PortState::AGGREGATION;
        if theirs.port != mine.port
            || theirs.port_priority != mine.port_priority
            || theirs.system != mine.system
            || theirs.system_priority != mine.system_priority
            || theirs.key != mine.key
            || (theirs.state.0 & mask) != (mine.state.0 & mask)
        {
            port.ntt = true;
        }
        // recordPDU, with __choose_matched: the partner is in sync only if it
        // says so and has recorded us correctly (or is individual).
        let matched = (theirs.port == mine.port
            && theirs.port_priority == mine.port_priority
            && theirs.system == mine.system
            && theirs.system_priority == mine.system_priority
            && theirs.key == mine.key
            && theirs.state.has(PortState::AGGREGATION) == mine.state.has(PortState::AGGREGATION))
            || !pdu.actor.state.has(PortState::AGGREGATION);
        port.partner = pdu.actor;
        let sync = matched && pdu.actor.state.has(PortState::SYNCHRONIZATION);
        port.partner.state.set(PortState::SYNCHRONIZATION, sync);
        port.actor.state.set(PortState::DEFAULTED, false);
        self.rx_enter(p, RxState::Current, now);
    }

    /// Periodic Transmission machine (figure 6-19). Our rate follows the
    /// partner's Timeout bit; a passive port keeps sending once its partner
    /// is active.
    fn periodic_machine(&mut self, p: usize, now: Instant) {
        let port = &mut self.ports[p];
        let both_passive = !port.actor.state.has(PortState::ACTIVITY)
            && !port.partner.state.has(PortState::ACTIVITY);
        let want = if !port.enabled || port.rx == RxState::LacpDisabled || both_passive {
            PeriodicState::NoPeriodic
        } else if port.partner.state.has(PortState::TIMEOUT) {
            PeriodicState::FastPeriodic
        } else {
            PeriodicState::SlowPeriodic
        };
        let interval = |s| {
            if s == PeriodicState::FastPeriodic {
                FAST_PERIODIC
            } else {
                SLOW_PERIODIC
            }
        };
        if want != port.periodic {
            let was = port.periodic;
            port.periodic = want;
            match want {
                PeriodicState::NoPeriodic => port.periodic_timer = Timer::Stopped,
                _ => {
                    // Entering from NO_PERIODIC, or the partner asked for the
                    // fast rate: send now. Slowing down just restarts the timer.
                    if was == PeriodicState::NoPeriodic || want == PeriodicState::FastPeriodic {
                        port.ntt = true;
                    }
                    port.periodic_timer = Timer::start(now, interval(want));
                }
            }
        } else if want != PeriodicState::NoPeriodic && port.periodic_timer.due(now) {
            port.ntt = true;
            port.periodic_timer = Timer::start(now, interval(want));
        }
    }

    /// Selection logic (6.4.14, `ad_port_selection_logic` and
    /// `ad_agg_selection_logic`).
    fn selection(&mut self, now: Instant) {
        // Ports that must leave their aggregator.
        for p in 0..self.ports.len() {
            let port = &self.ports[p];
            if port.selected == Selected::Unselected
                && port.aggregator.is_some()
                && port.mux == MuxState::Detached
            {
                self.ports[p].aggregator = None;
            }
        }
        for p in 0..self.ports.len() {
            let port = &self.ports[p];
            if port.selected == Selected::Selected
                || !port.enabled
                || !matches!(
                    port.rx,
                    RxState::Current | RxState::Defaulted | RxState::Expired
                )
            {
                continue;
            }
            if port.aggregator.is_some() {
                // Still attached: the Mux machine detaches first.
                continue;
            }
            let individual = !port.partner.state.has(PortState::AGGREGATION);
            let join = if individual {
                None
            } else {
                (0..self.ports.len()).find_map(|q| {
                    let o = &self.ports[q];
                    let a = o.aggregator?;
                    (q != p
                        && o.selected == Selected::Selected
                        && o.partner.state.has(PortState::AGGREGATION)
                        && o.actor.key == port.actor.key
                        && o.partner.system == port.partner.system
                        && o.partner.system_priority == port.partner.system_priority
                        && o.partner.key == port.partner.key)
                        .then_some(a)
                })
            };
            let agg = join.or_else(|| {
                // The port's own aggregator if free, else the first free one.
                let used = |a: usize| self.ports.iter().any(|o| o.aggregator == Some(a));
                if !used(p) {
                    Some(p)
                } else {
                    (0..self.ports.len()).find(|&a| !used(a))
                }
            });
            if let Some(a) = agg {
                let port = &mut self.ports[p];
                port.aggregator = Some(a);
                port.selected = Selected::Selected;
            }
        }
        self.select_active_aggregator(now);
    }

    fn agg_ports(&self, a: usize) -> impl Iterator<Item = &Port> + '_ {
        self.ports.iter().filter(move |p| p.aggregator == Some(a))
    }

    fn agg_has_partner(&self, a: usize) -> bool {
        self.agg_ports(a).any(|p| !p.partner.system.is_zero())
    }

    fn agg_individual(&self, a: usize) -> bool {
        self.agg_ports(a)
            .next()
            .is_some_and(|p| !p.partner.state.has(PortState::AGGREGATION))
    }

    fn agg_active_ports(&self, a: usize) -> usize {
        self.agg_ports(a).filter(|p| p.enabled).count()
    }

    fn agg_bandwidth(&self, a: usize) -> u64 {
        self.agg_ports(a)
            .filter(|p| p.enabled)
            .map(|p| u64::from(p.spec.speed_mbps.unwrap_or(0)))
            .sum()
    }

    fn agg_prio(&self, a: usize) -> u64 {
        // actor_port_prio: the kernel sums port priorities; higher wins.
        self.agg_ports(a)
            .map(|p| u64::from(p.actor.port_priority))
            .sum()
    }

    /// `ad_agg_selection_test`: is `cur` better than `best`?
    fn agg_better(&self, cur: usize, best: usize) -> bool {
        let (ci, bi) = (self.agg_individual(cur), self.agg_individual(best));
        if ci != bi {
            return !ci;
        }
        let (cp, bp) = (self.agg_has_partner(cur), self.agg_has_partner(best));
        if cp != bp {
            return cp;
        }
        match self.cfg.ad_select {
            AdSelect::Count => {
                let (cn, bn) = (self.agg_active_ports(cur), self.agg_active_ports(best));
                if cn != bn {
                    return cn > bn;
                }
                self.agg_bandwidth(cur) > self.agg_bandwidth(best)
            }
            AdSelect::Stable | AdSelect::Bandwidth => {
                self.agg_bandwidth(cur) > self.agg_bandwidth(best)
            }
            AdSelect::ActorPortPrio => self.agg_prio(cur) > self.agg_prio(best),
        }
    }

    fn select_active_aggregator(&mut self, _now: Instant) {
        let candidates: Vec<usize> = (0..self.ports.len())
            .filter(|&a| self.agg_active_ports(a) > 0)
            .collect();
        let mut best: Option<usize> = None;
        for &a in &candidates {
            best = match best {
                None => Some(a),
                Some(b) if self.agg_better(a, b) => Some(a),
                keep => keep,
            };
        }
        if self.cfg.ad_select == AdSelect::Stable {
            // Keep the active aggregator while it has ports and a partner (or
            // neither it nor the best has one).
            if let (Some(act), Some(b)) = (self.active_agg, best) {
                if self.agg_active_ports(act) > 0
                    && (self.agg_has_partner(act) || !self.agg_has_partner(b))
                {
                    best = Some(act);
                }
            }
        }
        if best != self.active_agg {
            self.active_agg = best;
        }
    }

    /// All ports of `a` that are WAITING have run out their wait_while.
    fn agg_ready(&self, a: usize, now: Instant) -> bool {
        self.agg_ports(a)
            .filter(|p| p.mux == MuxState::Waiting)
            .all(|p| p.wait_while.due(now) || p.wait_while == Timer::Stopped)
    }

    /// Mux machine (figures 6-21 / 6-22), with the kernel's rule that only
    /// the active aggregator collects and distributes.
    fn mux_machine(&mut self, p: usize, now: Instant) {
        // Several transitions can follow each other in one tick.
        for _ in 0..4 {
            let port = &self.ports[p];
            let selected = port.selected == Selected::Selected;
            let partner_sync = port.partner.state.has(PortState::SYNCHRONIZATION);
            let partner_collecting = port.partner.state.has(PortState::COLLECTING);
            let active = port.aggregator.is_some() && port.aggregator == self.active_agg;
            let coupled = self.cfg.coupled;
            // In ATTACHED the port is in sync only while its aggregator is
            // the active one, as the kernel's ad_mux_machine does: a port of
            // an unused aggregator must not tell its partner to distribute.
            if port.mux == MuxState::Attached
                && port.actor.state.has(PortState::SYNCHRONIZATION) != active
            {
                let port = &mut self.ports[p];
                port.actor.state.set(PortState::SYNCHRONIZATION, active);
                port.ntt = true;
                continue;
            }
            let next = match port.mux {
                MuxState::Detached if selected => Some(MuxState::Waiting),
                MuxState::Waiting if !selected => Some(MuxState::Detached),
                MuxState::Waiting => {
                    let a = port.aggregator;
                    let ready =
                        a.is_some_and(|a| self.agg_ready(a, now)) && port.wait_while.due(now);
                    ready.then_some(MuxState::Attached)
                }
                MuxState::Attached if !selected => Some(MuxState::Detached),
                MuxState::Attached if partner_sync && active => Some(if coupled {
                    MuxState::CollectingDistributing
                } else {
                    MuxState::Collecting
                }),
                MuxState::CollectingDistributing if !selected || !partner_sync || !active => {
                    Some(MuxState::Attached)
                }
                MuxState::Collecting if !selected || !partner_sync || !active => {
                    Some(MuxState::Attached)
                }
                MuxState::Collecting if partner_collecting => Some(MuxState::Distributing),
                MuxState::Distributing if !selected || !partner_sync || !active => {
                    Some(MuxState::Attached)
                }
                MuxState::Distributing if !partner_collecting => Some(MuxState::Collecting),
                _ => None,
            };
            let Some(next) = next else {
                return;
            };
            self.mux_enter(p, next, now);
        }
    }

    fn mux_enter(&mut self, p: usize, state: MuxState, now: Instant) {
        let port = &mut self.ports[p];
        port.mux = state;
        let s = &mut port.actor.state;
        match state {
            MuxState::Detached => {
                s.set(PortState::SYNCHRONIZATION, false);
                s.set(PortState::COLLECTING, false);
                s.set(PortState::DISTRIBUTING, false);
                port.wait_while = Timer::Stopped;
                if port.selected == Selected::Unselected {
                    port.aggregator = None;
                }
                port.ntt = true;
            }
            MuxState::Waiting => port.wait_while = Timer::start(now, AGGREGATE_WAIT),
            MuxState::Attached => {
                // Synchronization only for the active aggregator's ports (set
                // and cleared by mux_machine as the active one changes).
                let active = port.aggregator.is_some() && port.aggregator == self.active_agg;
                let s = &mut port.actor.state;
                s.set(PortState::SYNCHRONIZATION, active);
                s.set(PortState::COLLECTING, false);
                s.set(PortState::DISTRIBUTING, false);
                port.ntt = true;
            }
            MuxState::Collecting => {
                s.set(PortState::COLLECTING, true);
                s.set(PortState::DISTRIBUTING, false);
                port.ntt = true;
            }
            MuxState::Distributing => {
                s.set(PortState::DISTRIBUTING, true);
                port.ntt = true;
            }
            MuxState::CollectingDistributing => {
                s.set(PortState::COLLECTING, true);
                s.set(PortState::DISTRIBUTING, true);
                port.ntt = true;
            }
        }
    }

    /// Transmit machine (6.4.16): send when NTT, at most three per second.
    fn tx_machine(&mut self, p: usize, now: Instant) {
        let port = &mut self.ports[p];
        if !port.ntt {
            return;
        }
        if !port.enabled || port.periodic == PeriodicState::NoPeriodic {
            port.ntt = false;
            return;
        }
        while port
            .tx_times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            port.tx_times.pop_front();
        }
        if port.tx_times.len() >= MAX_TX_PER_SEC {
            return; // NTT stays set; sent at a later tick.
        }
        let pdu = Lacpdu {
            version: 1,
            actor: port.actor,
            partner: port.partner,
            collector_max_delay: 0,
        };
        self.out.push_back((p, pdu.emit(port.spec.mac)));
        port.tx_times.push_back(now);
        port.counters.lacpdu_tx += 1;
        port.ntt = false;
    }

    /// Churn Detection machines (figures 6-23, 6-24): MONITOR goes to NO_CHURN
    /// as soon as Sync is seen (the kernel waits for the timer instead) and to
    /// CHURN when the timer runs out first; CHURN goes back to NO_CHURN when
    /// Sync returns.
    fn churn_machine(&mut self, p: usize, now: Instant) {
        let port = &mut self.ports[p];
        if port.actor_churn == ChurnState::Churned
            && port.actor.state.has(PortState::SYNCHRONIZATION)
        {
            port.actor_churn = ChurnState::None;
        }
        if port.partner_churn == ChurnState::Churned
            && port.partner.state.has(PortState::SYNCHRONIZATION)
        {
            port.partner_churn = ChurnState::None;
        }
        if port.actor_churn == ChurnState::Monitoring {
            if port.actor.state.has(PortState::SYNCHRONIZATION) {
                port.actor_churn = ChurnState::None;
                port.actor_churn_timer = Timer::Stopped;
            } else if port.actor_churn_timer.due(now) {
                port.actor_churn = ChurnState::Churned;
                port.actor_churn_count += 1;
                port.actor_churn_timer = Timer::Stopped;
            }
        }
        if port.partner_churn == ChurnState::Monitoring {
            if port.partner.state.has(PortState::SYNCHRONIZATION) {
                port.partner_churn = ChurnState::None;
                port.partner_churn_timer = Timer::Stopped;
            } else if port.partner_churn_timer.due(now) {
                port.partner_churn = ChurnState::Churned;
                port.partner_churn_count += 1;
                port.partner_churn_timer = Timer::Stopped;
            }
        }
    }

    /// `lacp_fallback = "active-backup"`: with no aggregator that has a
    /// partner, one enabled port (lowest port priority, then name) carries
    /// traffic until a partner appears.
    fn update_fallback(&mut self) {
        if !self.cfg.fallback {
            self.fallback_port = None;
            return;
        }
        let any_partner = self
            .ports
            .iter()
            .any(|p| p.enabled && p.rx == RxState::Current);
        if any_partner {
            self.fallback_port = None;
            return;
        }
        let pick = self
            .ports
            .iter()
            .enumerate()
            .filter(|(_, p)| p.enabled && p.rx == RxState::Defaulted)
            .min_by(|(_, a), (_, b)| {
                (a.actor.port_priority, &a.spec.name).cmp(&(b.actor.port_priority, &b.spec.name))
            })
            .map(|(i, _)| i);
        // Keep the current fallback port while it stays eligible.
        if self
            .fallback_port
            .is_some_and(|f| self.ports[f].enabled && self.ports[f].rx == RxState::Defaulted)
        {
            return;
        }
        self.fallback_port = pick;
    }
}

/// Whether two partner descriptions name the same partner port
/// (`__update_selected` compares these fields).
fn same_link_partner(a: &PortInfo, b: &PortInfo) -> bool {
    a.port == b.port
        && a.port_priority == b.port_priority
        && a.system == b.system
        && a.system_priority == b.system_priority
        && a.key == b.key
        && a.state.has(PortState::AGGREGATION) == b.state.has(PortState::AGGREGATION)
}

#[cfg(test)]
mod tests;
