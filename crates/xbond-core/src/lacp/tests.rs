//! Simulation tests: two LACP engines joined by in-memory links with
//! controllable carrier, loss and delay, on a hand-driven clock.

use super::*;

const STEP: Duration = Duration::from_millis(10);

#[derive(Default)]
struct Wire {
    up: bool,
    /// Drop what A sends / what B sends.
    drop_a: bool,
    drop_b: bool,
    delay: Duration,
    to_b: VecDeque<(Instant, Vec<u8>)>,
    to_a: VecDeque<(Instant, Vec<u8>)>,
}

struct Sim {
    a: Lacp,
    b: Lacp,
    wires: Vec<Wire>,
    now: Instant,
    t0: Instant,
    /// Send times per (side, port), to check the rate limit.
    sent: Vec<Vec<Instant>>,
}

fn cfg(mac: u8) -> LacpConfig {
    LacpConfig {
        fast: true,
        active: true,
        ad_select: AdSelect::Stable,
        system: MacAddr([2, 0, 0, 0, 0, mac]),
        system_priority: 65535,
        user_port_key: 0,
        coupled: true,
        min_links: 0,
        fallback: false,
    }
}

fn ports(side: u8, speeds: &[u32]) -> Vec<PortSpec> {
    speeds
        .iter()
        .enumerate()
        .map(|(i, s)| PortSpec {
            mac: MacAddr([2, side, 0, 0, 1, i as u8]),
            speed_mbps: Some(*s),
            full_duplex: Some(true),
            port_priority: 255,
            name: format!("eth{i}"),
        })
        .collect()
}

impl Sim {
    fn new(ca: LacpConfig, cb: LacpConfig, speeds: &[u32]) -> Sim {
        let t0 = Instant::now();
        let n = speeds.len();
        Sim {
            a: Lacp::new(ca, ports(1, speeds), t0),
            b: Lacp::new(cb, ports(2, speeds), t0),
            wires: (0..n).map(|_| Wire::default()).collect(),
            now: t0,
            t0,
            sent: vec![Vec::new(); 2 * n],
        }
    }

    fn carrier(&mut self, w: usize, up: bool) {
        self.wires[w].up = up;
        self.a.set_port_enabled(w, up, self.now);
        self.b.set_port_enabled(w, up, self.now);
    }

    fn all_up(&mut self) {
        for w in 0..self.wires.len() {
            self.carrier(w, true);
        }
    }

    fn step(&mut self) {
        self.now += STEP;
        let now = self.now;
        let n = self.wires.len();
        while let Some((p, f)) = self.a.poll_transmit() {
            self.sent[p].push(now);
            let w = &mut self.wires[p];
            if w.up && !w.drop_a {
                w.to_b.push_back((now + w.delay, f));
            }
        }
        while let Some((p, f)) = self.b.poll_transmit() {
            self.sent[n + p].push(now);
            let w = &mut self.wires[p];
            if w.up && !w.drop_b {
                w.to_a.push_back((now + w.delay, f));
            }
        }
        for p in 0..n {
            while self.wires[p].to_b.front().is_some_and(|(t, _)| *t <= now) {
                let (_, f) = self.wires[p].to_b.pop_front().unwrap();
                let _ = self.b.handle_frame(p, &f, now);
            }
            while self.wires[p].to_a.front().is_some_and(|(t, _)| *t <= now) {
                let (_, f) = self.wires[p].to_a.pop_front().unwrap();
                let _ = self.a.handle_frame(p, &f, now);
            }
        }
        self.a.handle_timeout(now);
        self.b.handle_timeout(now);
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    /// Runs until `f` holds; returns the time it took from the start.
    fn until(&mut self, limit: Duration, f: impl Fn(&Sim) -> bool) -> Duration {
        let end = self.now + limit;
        while !f(self) {
            assert!(self.now < end, "condition not reached within {limit:?}");
            self.step();
        }
        self.now - self.t0
    }

    fn check_rate_limit(&self) {
        for (i, times) in self.sent.iter().enumerate() {
            for w in times.windows(MAX_TX_PER_SEC + 1) {
                assert!(
                    w[MAX_TX_PER_SEC] - w[0] >= Duration::from_secs(1),
                    "port {i} sent more than {MAX_TX_PER_SEC} PDUs in a second"
                );
            }
        }
    }
}

fn distributing(l: &Lacp) -> Vec<usize> {
    l.tx_ports().collect()
}

#[test]
fn fast_and_slow_negotiation_reach_collecting_distributing() {
    for fast in [true, false] {
        let mut ca = cfg(1);
        ca.fast = fast;
        let mut cb = cfg(2);
        cb.fast = fast;
        let mut s = Sim::new(ca, cb, &[10000, 10000]);
        s.all_up();
        let t = s.until(Duration::from_secs(10), |s| {
            distributing(&s.a) == [0, 1] && distributing(&s.b) == [0, 1]
        });
        assert!(s.a.carrier() && s.b.carrier());
        // Aggregate wait (2 s) dominates.
        assert!(
            t >= AGGREGATE_WAIT && t < Duration::from_secs(4),
            "fast={fast}: {t:?}"
        );
        let st = s.a.port_status(0).unwrap();
        assert_eq!(
            st.actor_state & 0x3c,
            0x3c,
            "aggr, sync, coll, dist: {:#x}",
            st.actor_state
        );
        assert_eq!(st.partner_system, MacAddr([2, 0, 0, 0, 0, 2]));
        assert_eq!(s.a.active_aggregator().unwrap().ports, 2);
        // Steady state: the partner's timeout bit sets our rate.
        let before = s.a.port_status(0).unwrap().counters.lacpdu_tx;
        s.run_for(Duration::from_secs(60));
        let sent = s.a.port_status(0).unwrap().counters.lacpdu_tx - before;
        if fast {
            assert!(
                (58..=62).contains(&sent),
                "fast: one per second, got {sent}"
            );
        } else {
            assert!((2..=3).contains(&sent), "slow: one per 30 s, got {sent}");
        }
        s.check_rate_limit();
    }
}

#[test]
fn silent_partner_expires_after_3s_and_defaults_3s_later_then_recovers() {
    let mut s = Sim::new(cfg(1), cfg(2), &[10000, 10000]);
    s.all_up();
    s.until(Duration::from_secs(10), |s| distributing(&s.a) == [0, 1]);
    // B stops sending on link 0; carrier stays up.
    s.wires[0].drop_b = true;
    let silent_at = s.now;
    // B's last PDU may have just arrived; expiry is 3 s after the last one.
    s.until(Duration::from_secs(5), |s| {
        s.a.port_status(0).unwrap().rx == RxState::Expired
    });
    let expired = s.now - silent_at;
    assert!(
        expired <= SHORT_TIMEOUT + Duration::from_millis(1200),
        "expired after {expired:?}"
    );
    assert!(
        expired >= SHORT_TIMEOUT - Duration::from_millis(1100),
        "expired after {expired:?}"
    );
    assert_eq!(
        distributing(&s.a),
        [1],
        "the silent link leaves the aggregator"
    );
    let e_at = s.now;
    s.until(Duration::from_secs(5), |s| {
        s.a.port_status(0).unwrap().rx == RxState::Defaulted
    });
    let d = s.now - e_at;
    assert!(
        d >= SHORT_TIMEOUT - TICK && d <= SHORT_TIMEOUT + TICK + STEP,
        "defaulted {d:?} after expiry"
    );
    assert!(s.a.carrier(), "the other link keeps the bond up");
    // B speaks again: the link renegotiates.
    s.wires[0].drop_b = false;
    s.until(Duration::from_secs(6), |s| distributing(&s.a) == [0, 1]);
    s.check_rate_limit();
}

#[test]
fn passive_and_passive_send_nothing_passive_and_active_negotiate() {
    let mut ca = cfg(1);
    ca.active = false;
    let mut cb = cfg(2);
    cb.active = false;
    let mut s = Sim::new(ca.clone(), cb, &[1000]);
    s.all_up();
    s.run_for(Duration::from_secs(40));
    assert!(
        s.sent.iter().all(|t| t.is_empty()),
        "passive ports stay silent"
    );
    assert!(!s.a.carrier());

    let mut s = Sim::new(ca, cfg(2), &[1000]);
    s.all_up();
    s.until(Duration::from_secs(10), |s| {
        distributing(&s.a) == [0] && distributing(&s.b) == [0]
    });
    // The passive side keeps sending once its partner is active.
    let before = s.a.port_status(0).unwrap().counters.lacpdu_tx;
    s.run_for(Duration::from_secs(10));
    assert!(s.a.port_status(0).unwrap().counters.lacpdu_tx >= before + 9);
}

#[test]
fn differing_keys_form_separate_aggregators_and_ad_select_chooses() {
    // Two 1G ports and one 10G port: keys differ by speed. (stable keeps
    // whichever aggregator got a partner first; see the next test.)
    for (policy, want_ports) in [
        (AdSelect::Count, vec![0, 1]),
        (AdSelect::Bandwidth, vec![2]),
        (AdSelect::ActorPortPrio, vec![0, 1]),
    ] {
        // Both ends choose with the same policy: a port of an aggregator its
        // own end does not use is out of sync, so an end can only
        // distribute where the other end chose the same links.
        let (mut ca, mut cb) = (cfg(1), cfg(2));
        ca.ad_select = policy;
        cb.ad_select = policy;
        let mut s = Sim::new(ca, cb, &[1000, 1000, 10000]);
        s.all_up();
        s.until(Duration::from_secs(10), |s| {
            distributing(&s.a) == want_ports && distributing(&s.b) == want_ports
        });
        for p in 0..3 {
            let sync = s.a.port_status(p).unwrap().actor_state & 0x08 != 0;
            assert_eq!(
                sync,
                want_ports.contains(&p),
                "{policy}: port {p} in sync only in the active aggregator"
            );
        }
        let aggs: Vec<Option<u16>> = (0..3)
            .map(|p| s.a.port_status(p).unwrap().aggregator_id)
            .collect();
        assert_eq!(aggs[0], aggs[1], "{policy}: same key, same aggregator");
        assert_ne!(aggs[0], aggs[2], "{policy}: other key, other aggregator");
        assert_ne!(
            s.a.port_status(0).unwrap().actor_key,
            s.a.port_status(2).unwrap().actor_key
        );
    }
}

#[test]
fn stable_keeps_the_active_aggregator_until_it_loses_its_ports() {
    let mut ca = cfg(1);
    ca.ad_select = AdSelect::Stable;
    let mut s = Sim::new(ca, cfg(2), &[1000, 1000, 10000]);
    // Only the 1G links at first.
    s.carrier(0, true);
    s.carrier(1, true);
    s.until(Duration::from_secs(10), |s| distributing(&s.a) == [0, 1]);
    s.carrier(2, true);
    s.run_for(Duration::from_secs(5));
    assert_eq!(
        distributing(&s.a),
        [0, 1],
        "stable: a better aggregator does not take over"
    );
    s.carrier(0, false);
    s.carrier(1, false);
    s.until(Duration::from_secs(10), |s| distributing(&s.a) == [2]);
}

#[test]
fn min_links_drops_and_restores_carrier() {
    let mut ca = cfg(1);
    ca.min_links = 2;
    let mut s = Sim::new(ca, cfg(2), &[1000, 1000]);
    s.all_up();
    s.until(Duration::from_secs(10), |s| s.a.carrier());
    assert!(s.a.take_changed());
    s.carrier(1, false);
    s.step();
    assert!(!s.a.carrier(), "one link is below min_links");
    assert!(s.a.take_changed());
    s.carrier(1, true);
    s.until(Duration::from_secs(10), |s| s.a.carrier());
}

#[test]
fn no_partner_means_no_carrier_unless_fallback() {
    let mut s = Sim::new(cfg(1), cfg(2), &[1000, 1000]);
    s.wires[0].drop_b = true;
    s.wires[1].drop_b = true;
    s.all_up();
    s.run_for(Duration::from_secs(10));
    assert!(
        !s.a.carrier(),
        "kernel bonds report carrier here; xbond does not"
    );
    assert!(distributing(&s.a).is_empty());

    let mut ca = cfg(1);
    ca.fallback = true;
    let mut specs = ports(1, &[1000, 1000]);
    specs[1].port_priority = 100; // eth1 is preferred
    let t0 = Instant::now();
    let mut s = Sim::new(ca.clone(), cfg(2), &[1000, 1000]);
    s.a = Lacp::new(ca, specs, t0);
    s.wires[0].drop_b = true;
    s.wires[1].drop_b = true;
    s.all_up();
    s.until(Duration::from_secs(10), |s| s.a.carrier());
    assert_eq!(s.a.fallback_port(), Some(1));
    assert_eq!(distributing(&s.a), [1]);
    assert!(s.a.collecting(1) && !s.a.collecting(0));
    // The switch gets configured: normal negotiation takes over.
    s.wires[0].drop_b = false;
    s.wires[1].drop_b = false;
    s.until(Duration::from_secs(10), |s| distributing(&s.a) == [0, 1]);
    assert_eq!(s.a.fallback_port(), None);
}

#[test]
fn carrier_loss_removes_a_port_within_a_tick_and_ignores_pdus() {
    let mut s = Sim::new(cfg(1), cfg(2), &[1000, 1000]);
    s.all_up();
    s.until(Duration::from_secs(10), |s| distributing(&s.a) == [0, 1]);
    s.carrier(0, false);
    assert_eq!(distributing(&s.a), [1], "at once");
    // A PDU arriving on a port without carrier changes nothing.
    let pdu = Lacpdu {
        version: 1,
        actor: PortInfo::default(),
        partner: PortInfo::default(),
        collector_max_delay: 0,
    };
    let before = s.a.port_status(0).unwrap();
    s.a.handle_frame(0, &pdu.emit(MacAddr([2, 9, 9, 9, 9, 9])), s.now)
        .unwrap();
    let after = s.a.port_status(0).unwrap();
    assert_eq!(after.counters.ignored_rx, before.counters.ignored_rx + 1);
    assert_eq!(
        (after.rx, after.partner_system),
        (before.rx, before.partner_system)
    );
}

#[test]
fn marker_information_gets_a_response() {
    let mut s = Sim::new(cfg(1), cfg(2), &[1000]);
    s.all_up();
    while s.a.poll_transmit().is_some() {}
    let m = MarkerPdu {
        kind: MarkerKind::Information,
        requester_port: 7,
        requester_system: MacAddr([2, 7, 7, 7, 7, 7]),
        transaction_id: 42,
    };
    s.a.handle_frame(0, &m.emit(MacAddr([2, 7, 7, 7, 7, 7])), s.now)
        .unwrap();
    let (p, f) = s.a.poll_transmit().expect("a response");
    assert_eq!(p, 0);
    match wire::parse(&f) {
        Ok(SlowPdu::Marker(r)) => {
            assert_eq!(r.kind, MarkerKind::Response);
            assert_eq!((r.requester_port, r.transaction_id), (7, 42));
        }
        other => panic!("{other:?}"),
    }
    let c = s.a.port_status(0).unwrap().counters;
    assert_eq!((c.marker_rx, c.marker_response_tx), (1, 1));
}

#[test]
fn malformed_pdus_are_counted_and_change_no_state() {
    let mut s = Sim::new(cfg(1), cfg(2), &[1000]);
    s.all_up();
    s.until(Duration::from_secs(10), |s| distributing(&s.a) == [0]);
    let before = s.a.port_status(0).unwrap();
    let good = Lacpdu {
        version: 1,
        actor: PortInfo::default(),
        partner: PortInfo::default(),
        collector_max_delay: 0,
    }
    .emit(MacAddr([2, 9, 9, 9, 9, 9]));
    let mut bad_tlv = good.clone();
    bad_tlv[17] = 3;
    let mut oam = good.clone();
    oam[14] = 3;
    for f in [&good[..60], &bad_tlv[..], &[0u8; 3][..]] {
        assert!(s.a.handle_frame(0, f, s.now).is_err());
    }
    assert!(s.a.handle_frame(0, &oam, s.now).unwrap_err().is_unknown());
    let after = s.a.port_status(0).unwrap();
    assert_eq!(after.counters.illegal_rx, before.counters.illegal_rx + 3);
    assert_eq!(after.counters.unknown_rx, before.counters.unknown_rx + 1);
    let strip = |mut p: PortStatus| {
        p.counters = PortCounters::default();
        p
    };
    assert_eq!(strip(after), strip(before));
    assert_eq!(distributing(&s.a), [0]);
}

#[test]
fn a_flood_on_one_port_is_read_up_to_the_budget_and_the_rest_dropped_unread() {
    let mut s = Sim::new(cfg(1), cfg(2), &[1000, 1000]);
    s.all_up();
    s.until(Duration::from_secs(10), |s| distributing(&s.a) == [0, 1]);
    let before = s.a.port_status(0).unwrap().counters;
    let other = s.a.port_status(1).unwrap();
    let mut junk = Lacpdu {
        version: 1,
        actor: PortInfo::default(),
        partner: PortInfo::default(),
        collector_max_delay: 0,
    }
    .emit(MacAddr([2, 9, 9, 9, 9, 9]));
    junk[17] = 3;
    // 1000 frames within one second of hand-held time, then as many in the
    // next: the budget each second.
    for second in 0..2u64 {
        let t = s.now + Duration::from_secs(second) + Duration::from_millis(5);
        for k in 0..1000u64 {
            let _ = s.a.handle_frame(0, &junk, t + Duration::from_micros(k));
        }
    }
    let c = s.a.port_status(0).unwrap().counters;
    let budget = u64::from(RX_BUDGET);
    assert!(c.illegal_rx - before.illegal_rx <= 2 * budget, "{c:?}");
    assert!(c.illegal_rx - before.illegal_rx >= 2 * budget - 10, "{c:?}");
    assert_eq!(
        (c.illegal_rx - before.illegal_rx) + (c.over_budget_rx - before.over_budget_rx),
        2000
    );
    // The other port saw nothing of it.
    assert_eq!(s.a.port_status(1).unwrap(), other);
}

#[test]
fn independent_control_collects_before_distributing() {
    let mut ca = cfg(1);
    ca.coupled = false;
    let mut cb = cfg(2);
    cb.coupled = false;
    let mut s = Sim::new(ca, cb, &[1000]);
    s.all_up();
    s.until(Duration::from_secs(10), |s| {
        distributing(&s.a) == [0] && distributing(&s.b) == [0]
    });
    assert_eq!(s.a.port_status(0).unwrap().mux, MuxState::Distributing);
}

#[test]
fn churn_is_detected_when_no_partner_syncs() {
    let mut s = Sim::new(cfg(1), cfg(2), &[1000]);
    s.wires[0].drop_b = true;
    s.all_up();
    s.run_for(CHURN_DETECTION + Duration::from_secs(1));
    let st = s.a.port_status(0).unwrap();
    assert_eq!(st.partner_churn, ChurnState::Churned);
    assert_eq!(st.partner_churned, 1);
}

#[test]
fn a_speed_change_changes_the_key_and_reselects() {
    let mut s = Sim::new(cfg(1), cfg(2), &[1000, 1000]);
    s.all_up();
    s.until(Duration::from_secs(10), |s| distributing(&s.a) == [0, 1]);
    assert_eq!(s.a.port_status(0).unwrap().actor_key, (4 << 1) | 1);
    let now = s.now;
    s.a.set_port_speed(0, Some(10000), Some(true), now);
    assert_eq!(s.a.port_status(0).unwrap().actor_key, (7 << 1) | 1);
    // Port 0 now has another key: it leaves port 1's aggregator.
    s.until(Duration::from_secs(10), |s| {
        let a0 = s.a.port_status(0).unwrap().aggregator_id;
        a0.is_some() && a0 != s.a.port_status(1).unwrap().aggregator_id
    });
}

#[test]
fn a_looped_back_lacpdu_is_illegal_and_changes_nothing() {
    let mut s = Sim::new(cfg(1), cfg(2), &[1000, 1000]);
    s.all_up();
    // Port 0's own PDU arrives on port 1 (the two ports cabled together).
    s.run_for(Duration::from_millis(200));
    let before = s.a.port_status(1).unwrap();
    let own = Lacpdu {
        version: 1,
        actor: PortInfo {
            system_priority: 65535,
            system: MacAddr([2, 0, 0, 0, 0, 1]),
            key: before.actor_key,
            port_priority: 255,
            port: 1,
            state: PortState(0x3d),
        },
        partner: PortInfo::default(),
        collector_max_delay: 0,
    };
    let err =
        s.a.handle_frame(1, &own.emit(MacAddr([2, 1, 0, 0, 1, 0])), s.now)
            .unwrap_err();
    assert_eq!(err, SlowError::Loopback);
    let after = s.a.port_status(1).unwrap();
    assert_eq!(after.counters.illegal_rx, before.counters.illegal_rx + 1);
    assert_eq!(after.partner_system, before.partner_system);
}

#[test]
fn churn_clears_when_the_partner_syncs_again() {
    let mut s = Sim::new(cfg(1), cfg(2), &[1000]);
    s.wires[0].drop_b = true;
    s.all_up();
    s.run_for(CHURN_DETECTION + Duration::from_secs(1));
    assert_eq!(
        s.a.port_status(0).unwrap().partner_churn,
        ChurnState::Churned
    );
    s.wires[0].drop_b = false;
    s.until(Duration::from_secs(10), |s| {
        s.a.port_status(0).unwrap().partner_churn == ChurnState::None
    });
    assert_eq!(
        s.a.port_status(0).unwrap().partner_churned,
        1,
        "the count stays"
    );
}

#[test]
fn a_marker_flood_does_not_pile_up_responses() {
    let mut s = Sim::new(cfg(1), cfg(2), &[1000]);
    s.all_up();
    let m = MarkerPdu {
        kind: MarkerKind::Information,
        requester_port: 7,
        requester_system: MacAddr([2, 7, 7, 7, 7, 7]),
        transaction_id: 1,
    }
    .emit(MacAddr([2, 7, 7, 7, 7, 7]));
    for _ in 0..10_000 {
        s.a.handle_frame(0, &m, s.now).unwrap();
    }
    assert!(std::iter::from_fn(|| s.a.poll_transmit()).count() <= 64);
}

#[test]
fn adopting_after_a_release_keeps_the_other_port_aggregated() {
    let mut s = Sim::new(cfg(1), cfg(2), &[1000, 1000]);
    s.all_up();
    s.until(Duration::from_secs(10), |s| distributing(&s.a) == [0, 1]);
    let kept = s.a.port_status(1).unwrap();
    // Port 0 released: a new engine with the old port 1 alone.
    let specs = ports(1, &[1000, 1000]);
    let mut a = Lacp::new(cfg(1), vec![specs[1].clone()], s.now);
    a.adopt(&s.a, &[None, Some(0)]);
    let now = a.port_status(0).unwrap();
    assert_eq!(
        (
            now.mux,
            now.actor_port,
            now.partner_system,
            now.partner_key,
            now.actor_state
        ),
        (
            kept.mux,
            kept.actor_port,
            kept.partner_system,
            kept.partner_key,
            kept.actor_state
        )
    );
    assert_eq!(a.tx_ports().collect::<Vec<_>>(), [0]);
    assert!(a.carrier());
    // A port enslaved later gets a port number of its own.
    let mut b = Lacp::new(cfg(1), vec![specs[1].clone(), specs[0].clone()], s.now);
    b.adopt(&a, &[Some(0)]);
    let numbers = (
        b.port_status(0).unwrap().actor_port,
        b.port_status(1).unwrap().actor_port,
    );
    assert_eq!(numbers.0, kept.actor_port);
    assert_ne!(numbers.1, numbers.0);
    assert_eq!(b.tx_ports().collect::<Vec<_>>(), [0]);
}
