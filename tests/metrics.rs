//! The Prometheus endpoint, scraped over HTTP and parsed as the exposition
//! format: node_exporter's bonding names and xbond's own follow the bond
//! through traffic and a failover; and the procfs-style status file that
//! tools reading /proc/net/bonding under another root use.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{status, wait_status, TwoLinks};

const HANG: Duration = Duration::from_secs(20);

/// GET `url` from inside namespace `ns` (the endpoint listens on that
/// namespace's loopback), with a real HTTP client.
fn scrape(ns: &str, url: &str) -> (u16, String, String) {
    let netns = std::path::PathBuf::from(format!("/run/netns/{ns}"));
    let url = url.to_string();
    std::thread::spawn(move || {
        xbond_xdp::sys::enter_netns(&netns).unwrap();
        match ureq::get(&url).timeout(Duration::from_secs(10)).call() {
            Ok(r) => {
                let ct = r.header("Content-Type").unwrap_or_default().to_string();
                (r.status(), ct, r.into_string().unwrap())
            }
            Err(ureq::Error::Status(code, r)) => (code, String::new(), r.into_string().unwrap()),
            Err(e) => panic!("GET {url}: {e}"),
        }
    })
    .join()
    .unwrap()
}

/// The samples of an exposition: `name{labels}` -> value; every line is a
/// comment (`# TYPE`, `# HELP`, `# EOF`) or a sample, each family typed.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut typed = Vec::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let mut f = t.split(' ');
            typed.push((f.next().unwrap().to_string(), f.next().unwrap().to_string()));
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("sample {line:?}"));
        let name = key.split('{').next().unwrap();
        assert!(
            typed
                .iter()
                .any(|(f, _)| name == f || name.strip_suffix("_total") == Some(f)),
            "{name} has a # TYPE line"
        );
        out.insert(
            key.to_string(),
            value.parse().unwrap_or_else(|_| panic!("value {line:?}")),
        );
    }
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    out
}

fn get(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    *m.get(key).unwrap_or_else(|| panic!("{key} in {m:#?}"))
}

#[test]
fn the_endpoint_follows_traffic_and_a_failover_and_the_proc_file_reads_as_procfs() {
    let mut t = TwoLinks::new("mt");
    t.far_bridge("10.92.0.2/24");
    let host = t.host.clone();
    let sock = t.start(
        &host,
        "xa",
        "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\nprimary = \"a0\"\nmiimon = 100\nmetrics_listen = \"127.0.0.1:9741\"\n",
        "10.92.0.1/24",
    );
    wait_status(&sock, HANG, |s| {
        s.slaves.iter().all(|x| x.mii_status == "up")
    });
    t.ping(&host, "10.92.0.2");
    let (code, ct, text) = scrape(&host, "http://127.0.0.1:9741/metrics");
    assert_eq!(code, 200, "{text}");
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let m = parse(&text);
    assert_eq!(get(&m, "node_bonding_slaves{master=\"bond0\"}"), 2.0);
    assert_eq!(get(&m, "node_bonding_active{master=\"bond0\"}"), 2.0);
    assert_eq!(get(&m, "xbond_up{master=\"bond0\"}"), 1.0);
    assert_eq!(
        get(&m, "xbond_slave_active{master=\"bond0\",slave=\"a0\"}"),
        1.0
    );
    assert!(
        get(
            &m,
            "xbond_slave_tx_frames_total{master=\"bond0\",slave=\"a0\"}"
        ) >= 5.0
    );
    assert_eq!(get(&m, "xbond_failovers_total{master=\"bond0\"}"), 0.0);
    assert!(m.keys().any(|k| k.starts_with("xbond_socket_dropped_frames_total{master=\"bond0\",queue=\"0\",iface=\"a0\",kind=\"rx_ring_full\"}")), "{text}");
    // The pings were batches of queue 0's worker, which slept in between.
    for kind in ["busy_passes", "sleeps"] {
        let k = format!("xbond_queue_events_total{{master=\"bond0\",queue=\"0\",kind=\"{kind}\"}}");
        assert!(get(&m, &k) >= 1.0, "{k}: {text}");
    }
    // No --coalesce-us: the worker never waited after a pass.
    let k = "xbond_queue_events_total{master=\"bond0\",queue=\"0\",kind=\"coalesce_waits\"}";
    assert_eq!(get(&m, k), 0.0, "{text}");
    let (code, _, _) = scrape(&host, "http://127.0.0.1:9741/other");
    assert_eq!(code, 404);

    // The procfs-style file, beside the control socket here
    // (/run/xbond/proc/net/bonding/bond0 by default), reads as the status.
    let proc_file = t.lab.dir().join("proc/net/bonding/bond0");
    let head = |text: &str| text.lines().take(9).collect::<Vec<_>>().join("\n");
    let want = head(&status(&sock).proc_text());
    let text = xbond::lab::wait_for(HANG, || {
        let t = std::fs::read_to_string(&proc_file).ok()?;
        (head(&t) == want).then_some(t)
    })
    .expect("the proc file matches the status");
    assert!(
        text.starts_with("Ethernet Channel Bonding Driver: xbond"),
        "{text}"
    );

    // A failover: the active slave's link goes.
    t.lab
        .exec(&t.far, &["ip", "link", "set", "b0", "down"])
        .unwrap();
    wait_status(&sock, HANG, |s| s.active.as_deref() == Some("a1"));
    let (_, _, text) = scrape(&host, "http://127.0.0.1:9741/metrics");
    let m = parse(&text);
    assert_eq!(get(&m, "node_bonding_active{master=\"bond0\"}"), 1.0);
    assert_eq!(get(&m, "xbond_failovers_total{master=\"bond0\"}"), 1.0);
    // Exported once there was a failover (the figure itself is the
    // benchmark's).
    assert!(get(&m, "xbond_last_failover_seconds{master=\"bond0\"}").is_finite());
    assert_eq!(
        get(
            &m,
            "xbond_slave_link_failures_total{master=\"bond0\",slave=\"a0\"}"
        ),
        1.0
    );
    assert_eq!(
        get(&m, "xbond_slave_mii_up{master=\"bond0\",slave=\"a0\"}"),
        0.0
    );
    assert_eq!(
        get(&m, "xbond_slave_active{master=\"bond0\",slave=\"a1\"}"),
        1.0
    );
    xbond::lab::wait_for(HANG, || {
        let t = std::fs::read_to_string(&proc_file).ok()?;
        t.contains("Currently Active Slave: a1").then_some(())
    })
    .expect("the proc file follows the failover");
    assert!(status(&sock).proc_text().contains("Failovers: 1 (last: "));
    // Gone with the bond, as /proc/net/bonding/bond0.
    assert!(t.lab.stop("xa").unwrap());
    assert!(!proc_file.exists());
}

#[test]
fn lacp_counters_and_states_are_exported_and_a_taken_port_refuses_the_start() {
    let mut t = TwoLinks::new("ml");
    let (host, far) = (t.host.clone(), t.far.clone());
    let cfg = |a: &str, b: &str, extra: &str| {
        format!("name = \"bond0\"\nslaves = [\"{a}\", \"{b}\"]\nmode = \"802.3ad\"\nmiimon = 100\nlacp_rate = \"fast\"\n{extra}")
    };
    let sock = t.start(
        &host,
        "xa",
        &cfg("a0", "a1", "metrics_listen = \"127.0.0.1:9742\"\n"),
        "10.93.0.1/24",
    );
    t.start(&far, "xb", &cfg("b0", "b1", ""), "10.93.0.2/24");
    wait_status(&sock, HANG, |s| s.mii_status);
    let (_, _, text) = scrape(&host, "http://127.0.0.1:9742/metrics");
    let m = parse(&text);
    for p in ["a0", "a1"] {
        let l = |k: &str| format!("{{master=\"bond0\",slave=\"{p}\",kind=\"{k}\"}}");
        assert!(get(&m, &format!("xbond_slave_lacpdus_total{}", l("rx"))) >= 1.0);
        assert!(get(&m, &format!("xbond_slave_lacpdus_total{}", l("tx"))) >= 1.0);
        assert_eq!(
            get(&m, &format!("xbond_slave_lacpdus_total{}", l("malformed"))),
            0.0
        );
        // Collecting and distributing (0x30) in both views.
        assert_eq!(
            get(&m, &format!("xbond_slave_lacp_state{}", l("actor"))) as u8 & 0x30,
            0x30
        );
        assert_eq!(
            get(&m, &format!("xbond_slave_lacp_state{}", l("partner"))) as u8 & 0x30,
            0x30
        );
    }
    // A second bond asking for the same port is refused before it changes
    // anything.
    let e = t
        .lab
        .start_xbond(
            common::exe(),
            &host,
            "xc",
            "name = \"bond1\"\nslaves = [\"a0\"]\nmode = \"active-backup\"\nmetrics_listen = \"127.0.0.1:9742\"\n",
        )
        .unwrap_err();
    assert!(
        format!("{e:#}").contains("metrics_listen = \"127.0.0.1:9742\": cannot listen"),
        "{e:#}"
    );
}
