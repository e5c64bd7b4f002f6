//! The peers the system benchmark measures beside xbond, in the same
//! topology and run, when they are installed: DPDK's testpmd forwarding
//! between af_xdp ports (plain io forwarding, and through DPDK's bonding PMD
//! in mode 4), and Open vSwitch's userspace datapath with a balance-tcp LACP
//! bond over afxdp ports.
//!
//! Each takes xbond's place in the host namespace: the generator and the
//! sink still use `bond0`, here a plain veth whose other end `xb-bond0` the
//! peer forwards from and to, as xbond's upper port. The bonds (DPDK mode 4,
//! OVS balance-tcp) have xbond's 802.3ad bond in the far namespace as their
//! LACP partner. Nothing is installed here: README's measuring section says
//! how; an absent peer is listed as not measured.

use std::path::Path;
use std::time::Duration;

use xbond::lab::{wait_for, Lab};

/// A peer forwarder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// testpmd, io forwarding between `xb-bond0` and one slave (no bond).
    DpdkIo,
    /// testpmd, io forwarding between `xb-bond0` and a bonding PMD port in
    /// mode 4 (802.3ad), transmit policy l34, over two slaves.
    DpdkBond,
    /// ovs-vswitchd, netdev datapath: `xb-bond0` and a balance-tcp bond with
    /// LACP (fast) over two slaves, all afxdp ports, in a bridge with the
    /// NORMAL action.
    OvsBalanceTcp,
}

impl Peer {
    /// The program the peer needs.
    fn program(self) -> &'static str {
        match self {
            Peer::DpdkIo | Peer::DpdkBond => "dpdk-testpmd",
            Peer::OvsBalanceTcp => "ovs-vswitchd",
        }
    }

    /// `None` when the peer can run here, else why not.
    pub fn missing(self) -> Option<String> {
        let found = std::env::var_os("PATH").is_some_and(|p| {
            std::env::split_paths(&p).any(|d| d.join(self.program()).is_file())
                || Path::new("/usr/sbin").join(self.program()).is_file()
        });
        (!found).then(|| format!("{} is not installed", self.program()))
    }

    /// Starts the peer in `ns` (where `bond0`/`xb-bond0` and the slaves are)
    /// as process "bond"; returns its pid once it forwards (for the bonds:
    /// once `partner_up` says the far bond's LACP is up).
    ///
    /// DPDK's mode 4 sends its LACPDUs from the bond's transmit call, and
    /// testpmd's io forwarding calls it only with frames to send: until LACP
    /// is up, `exe` (an xbond) trickles frames into `bond0` so that testpmd
    /// has some. Its partner runs the slow LACP rate for the same reason:
    /// while traffic flows only towards the host, DPDK sends no LACPDU, and
    /// the fast rate's 3 s timeout would end the aggregate mid-run.
    pub fn start(
        self,
        lab: &mut Lab,
        exe: &Path,
        ns: &str,
        slaves: &[&str],
        partner_up: impl Fn() -> bool,
    ) -> anyhow::Result<u32> {
        lab.veth(ns, "bond0", ns, "xb-bond0")?;
        match self {
            Peer::DpdkIo | Peer::DpdkBond => self.start_testpmd(lab, ns, slaves)?,
            Peer::OvsBalanceTcp => start_ovs(lab, ns, slaves)?,
        }
        let pid = lab
            .pid("bond")
            .ok_or_else(|| anyhow::anyhow!("{self:?}: no pid"))?;
        if self == Peer::DpdkIo {
            // No protocol to wait for: the sockets are up once testpmd
            // prints its first statistics.
            let log = lab.dir().join("bond.log");
            let up = wait_for(Duration::from_secs(20), || {
                std::fs::read_to_string(&log)
                    .ok()
                    .filter(|l| l.contains("Port statistics"))
            });
            anyhow::ensure!(up.is_some(), "testpmd did not start: see {}", log.display());
        } else {
            if self == Peer::DpdkBond {
                let exe = exe.display().to_string();
                lab.spawn(
                    ns,
                    "trickle",
                    &[
                        &exe,
                        "pktgen",
                        "send",
                        "--engine",
                        "af_xdp",
                        "--iface",
                        "bond0",
                        "--dst-mac",
                        "02:00:00:00:00:99",
                        "--count",
                        "0",
                        "--rate",
                        "1000",
                        "--duration",
                        "60",
                    ],
                )?;
            }
            let up = wait_for(Duration::from_secs(40), || partner_up().then_some(()));
            if self == Peer::DpdkBond {
                lab.stop("trickle")?;
            }
            anyhow::ensure!(
                up.is_some(),
                "{self:?}: LACP with the far bond did not come up (logs in {})",
                lab.dir().display()
            );
        }
        Ok(pid)
    }

    fn start_testpmd(self, lab: &mut Lab, ns: &str, slaves: &[&str]) -> anyhow::Result<()> {
        let prefix = format!("--file-prefix={}", lab.tag());
        let mut args: Vec<String> = [
            "dpdk-testpmd",
            "--no-huge",
            "-m",
            "512",
            "--no-pci",
            "-l",
            "0,1",
            &prefix,
        ]
        .map(String::from)
        .to_vec();
        args.push("--vdev".into());
        args.push("net_af_xdp0,iface=xb-bond0".into());
        let used = if self == Peer::DpdkBond {
            slaves
        } else {
            &slaves[..1]
        };
        for (i, s) in used.iter().enumerate() {
            args.push("--vdev".into());
            args.push(format!("net_af_xdp{},iface={s}", i + 1));
        }
        args.extend(
            [
                "--",
                "--nb-cores=1",
                "--total-num-mbufs=32768",
                // Statistics every second keep testpmd off its "press enter"
                // prompt, which would end it at once without a terminal.
                "--stats-period=1",
            ]
            .map(String::from),
        );
        if self == Peer::DpdkIo {
            args.extend(["--forward-mode=io", "--auto-start"].map(String::from));
        } else {
            // The bond is made by testpmd's commands, which mark its members
            // as such: a bond given as a --vdev leaves them unmarked, and
            // testpmd then refuses to forward ("Not all ports were
            // started"). No port is started before the bond: a member that
            // testpmd had started could not be started again by the bond
            // (its af_xdp socket exists already).
            let bond = slaves.len() + 1;
            let mut cmds = String::from("create bonded device 4 0\n");
            for m in 1..=slaves.len() {
                cmds.push_str(&format!("add bonding slave {m} {bond}\n"));
            }
            cmds.push_str(&format!(
                "set bonding balance_xmit_policy {bond} l34\nport start {bond}\nport start 0\n\
                 set portlist 0,{bond}\nset fwd io\nstart\n"
            ));
            let file = lab.dir().join("testpmd.cmds");
            std::fs::write(&file, cmds)?;
            args.push("--disable-device-start".into());
            args.push(format!("--cmdline-file={}", file.display()));
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        lab.spawn(ns, "bond", &argv)?;
        Ok(())
    }
}

/// ovsdb-server and ovs-vswitchd with their own database and run directory
/// in the lab folder; the bridge, the ports and the two rules.
fn start_ovs(lab: &mut Lab, ns: &str, slaves: &[&str]) -> anyhow::Result<()> {
    let d = lab.dir().join("ovs");
    std::fs::create_dir_all(&d)?;
    let p = |f: &str| d.join(f).display().to_string();
    let db = p("conf.db");
    xbond::lab::cmd(&[
        "ovsdb-tool",
        "create",
        &db,
        "/usr/share/openvswitch/vswitch.ovsschema",
    ])?;
    let remote = format!("--remote=punix:{}", p("db.sock"));
    let (db_pid, db_ctl, db_log) = (
        format!("--pidfile={}", p("ovsdb.pid")),
        format!("--unixctl={}", p("ovsdb.ctl")),
        format!("--log-file={}", p("ovsdb.log")),
    );
    lab.spawn(
        ns,
        "ovsdb",
        &["ovsdb-server", &db, &remote, &db_pid, &db_ctl, &db_log],
    )?;
    let sock = d.join("db.sock");
    anyhow::ensure!(
        wait_for(Duration::from_secs(10), || sock.exists().then_some(())).is_some(),
        "ovsdb-server did not start: see {}",
        p("ovsdb.log")
    );
    let dbarg = format!("--db=unix:{}", p("db.sock"));
    let vsctl = |lab: &Lab, args: &[&str]| -> anyhow::Result<String> {
        let mut all = vec!["ovs-vsctl", dbarg.as_str(), "--timeout=30"];
        all.extend_from_slice(args);
        lab.exec(ns, &all)
    };
    vsctl(lab, &["--no-wait", "init"])?;
    let rundir = format!("OVS_RUNDIR={}", d.display());
    let (vs_pid, vs_ctl, vs_log) = (
        format!("--pidfile={}", p("vswitchd.pid")),
        format!("--unixctl={}", p("vswitchd.ctl")),
        format!("--log-file={}", p("vswitchd.log")),
    );
    let dbsock = format!("unix:{}", p("db.sock"));
    lab.spawn(
        ns,
        "bond",
        &[
            "env",
            &rundir,
            "ovs-vswitchd",
            &dbsock,
            &vs_pid,
            &vs_ctl,
            &vs_log,
        ],
    )?;
    let mut args: Vec<String> = [
        "--",
        "add-br",
        "br0",
        "--",
        "set",
        "bridge",
        "br0",
        "datapath_type=netdev",
        "--",
        "add-port",
        "br0",
        "xb-bond0",
        "--",
        "set",
        "interface",
        "xb-bond0",
        "type=afxdp",
        "--",
        "add-bond",
        "br0",
        "ovsbond",
    ]
    .map(String::from)
    .to_vec();
    args.extend(slaves.iter().map(|s| s.to_string()));
    args.extend(
        [
            "bond_mode=balance-tcp",
            "lacp=active",
            "other_config:lacp-time=fast",
        ]
        .map(String::from),
    );
    for s in slaves {
        args.extend(["--", "set", "interface", s, "type=afxdp"].map(String::from));
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    vsctl(lab, &argv)?;
    // The bridge's NORMAL action (OpenFlow cannot output to a bond): the
    // generator's destination MAC is never learned, so each frame is
    // flooded, to the bond's one member or to xb-bond0, and not to the
    // bridge's own port.
    let mgmt = format!("unix:{}", p("br0.mgmt"));
    lab.exec(ns, &["ovs-ofctl", "mod-port", &mgmt, "br0", "no-flood"])?;
    Ok(())
}
