//! The control socket under hostile clients: an unprivileged user is refused
//! (by the socket's mode, and by its credentials when it can reach the
//! socket through a supplementary group), a member of `control_group` may
//! read the status, and an oversized or garbage request gets an error while
//! the daemon goes on answering.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;

use common::{exe, status, TwoLinks};

/// A group made for the test, deleted on drop.
struct Group {
    name: String,
    gid: u32,
}

impl Group {
    fn new(name: &str) -> Group {
        let st = Command::new("groupadd").arg(name).status().unwrap();
        assert!(st.success(), "groupadd {name}");
        let gid = std::fs::read_to_string("/etc/group")
            .unwrap()
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f[0] == name).then(|| f[2].parse().unwrap())
            })
            .unwrap();
        Group {
            name: name.into(),
            gid,
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(&self.name).status();
    }
}

/// `xbond status` as uid nobody with the given primary and supplementary
/// groups.
fn status_as_nobody(sock: &str, gid: u32, groups: &str) -> (bool, String) {
    let (code, text) = common::output(
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                &format!("--regid={gid}"),
                &format!("--groups={groups}"),
            ])
            .arg(exe())
            .args(["status", "bond0", "--socket", sock]),
    );
    (code == 0, text)
}

fn raw(sock: &str, request: &[u8]) -> String {
    let mut c = UnixStream::connect(sock).unwrap();
    let _ = c.write_all(request);
    let _ = c.shutdown(std::net::Shutdown::Write);
    let mut line = String::new();
    BufReader::new(c).read_line(&mut line).unwrap();
    line
}

#[test]
fn only_root_and_the_control_group_get_the_status() {
    let mut t = TwoLinks::new("cg");
    let host = t.host.clone();
    let group = Group::new(&format!("xbctl{}", std::process::id()));
    let sock = t.start(
        &host,
        "xa",
        &format!(
            "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\ncontrol_group = \"{}\"\n",
            group.name
        ),
        "10.73.0.1/24",
    );
    let (ok, text) = status_as_nobody(&sock, group.gid, &group.gid.to_string());
    assert!(
        ok && text.contains("Bonding Mode: fault-tolerance"),
        "a member reads the status: {text}"
    );
    // Reaches the socket through a supplementary group, but its credentials
    // (primary gid) are not the control group's: refused by the daemon.
    let (ok, text) = status_as_nobody(&sock, 65534, &group.gid.to_string());
    assert!(
        !ok && text.contains("permission denied: uid 65534 gid 65534"),
        "{text}"
    );
    // Neither: the socket's mode refuses the connection.
    let (ok, text) = status_as_nobody(&sock, 65534, "65534");
    assert!(!ok && text.contains("connecting to"), "{text}");
    status(&sock);
}

#[test]
fn an_oversized_or_garbage_request_gets_an_error_and_the_daemon_goes_on() {
    let mut t = TwoLinks::new("cb");
    let host = t.host.clone();
    let sock = t.start(
        &host,
        "xa",
        "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"balance-rr\"\n",
        "10.74.0.1/24",
    );
    let big = vec![b'a'; 100_000];
    let answer = raw(&sock, &big);
    assert!(answer.contains("at most 4096 bytes"), "{answer}");
    let answer = raw(&sock, b"\x00\xff\xfe garbage \x1b[2J\n");
    assert!(answer.contains("unknown request"), "{answer}");
    let answer = raw(&sock, b"status");
    assert!(answer.contains("ending in a newline"), "{answer}");
    // More clients at once than it serves, none sending: the next one is
    // told the daemon is busy (not queued without end); once they go, the
    // status is served again, and the bond forwarded all along.
    let idle: Vec<UnixStream> = (0..40)
        .map(|_| UnixStream::connect(&sock).unwrap())
        .collect();
    let err = xbond::control::query_status(&sock).unwrap_err();
    assert!(format!("{err:#}").contains("busy"), "{err:#}");
    drop(idle);
    let s = xbond::lab::wait_for(std::time::Duration::from_secs(10), || {
        xbond::control::query_status(&sock).ok()
    })
    .expect("status served again");
    assert_eq!(s.mode, xbond_core::options::Mode::BalanceRr);
}

/// Per thread of process `pid`: (name, CapEff, CapPrm, CapBnd, policy).
fn threads(pid: u32) -> Vec<(String, u64, u64, u64, u32)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = t.unwrap().path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap();
        let st = std::fs::read_to_string(dir.join("status")).unwrap();
        let cap = |k: &str| {
            let v = st
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap_or_else(|| panic!("{k} in {}", dir.display()));
            u64::from_str_radix(v.trim(), 16).unwrap()
        };
        // The policy is field 41; the name (field 2) may hold spaces.
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let policy = after.split(' ').nth(38).unwrap().parse().unwrap();
        out.push((
            name.trim().to_string(),
            cap("CapEff:"),
            cap("CapPrm:"),
            cap("CapBnd:"),
            policy,
        ));
    }
    out
}

#[test]
fn after_set_up_only_the_control_thread_keeps_capabilities_and_real_time() {
    let mut t = TwoLinks::new("cp");
    let host = t.host.clone();
    let sock = t.start(
        &host,
        "xa",
        "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\nmetrics_listen = \"127.0.0.1:9743\"\n",
        "10.75.0.1/24",
    );
    let pid = t.lab.pid("xa").expect("daemon pid");
    // CAP_NET_ADMIN 12, CAP_NET_RAW 13, CAP_IPC_LOCK 14, CAP_BPF 39.
    let runtime: u64 = (1 << 12) | (1 << 13) | (1 << 14) | (1 << 39);
    let all = threads(pid);
    let control: Vec<_> = all.iter().filter(|t| t.0 == "xbond-bond0").collect();
    assert_eq!(control.len(), 1, "one control thread: {all:?}");
    let (_, eff, prm, bnd, policy) = control[0];
    assert_eq!((*eff, *prm, *bnd), (runtime, runtime, runtime), "{all:?}");
    assert_eq!(*policy, 1, "the control thread is SCHED_FIFO: {all:?}");
    for t in all.iter().filter(|t| t.0 != "xbond-bond0") {
        assert_eq!((t.1, t.2), (0, 0), "no capability left: {t:?}");
        assert_eq!(t.4, 0, "normal scheduling: {t:?}");
    }
    assert!(
        all.iter().any(|t| t.0.starts_with("xbond-w"))
            && all.iter().any(|t| t.0 == "xbond-control")
            && all.iter().any(|t| t.0 == "xbond-metrics"),
        "workers, the control socket's and the metrics' threads are among them: {all:?}"
    );
    // With what it kept, the bond still does its work at run time: a
    // failover (MACs, filters, peer notification on a1), then a clean exit
    // that puts the host back.
    t.lab
        .exec(&t.far, &["ip", "link", "set", "b0", "down"])
        .unwrap();
    let s = common::wait_status(&sock, std::time::Duration::from_secs(20), |s| {
        s.active.as_deref() == Some("a1")
    });
    assert_eq!(s.active.as_deref(), Some("a1"));
    assert!(t.lab.stop("xa").unwrap(), "a clean exit");
}
