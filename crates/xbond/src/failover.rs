//! The failover lab, the one that `xbond failover-test`, the demo, the
//! benchmark and the integration tests (tests/failover.rs) all use: an
//! active-backup bond over two veth links into a switch; a steady numbered
//! stream through it, the active slave's path cut in the middle (or the
//! daemon restarted), and the frames (and so the milliseconds of traffic)
//! that never arrived.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use xbond_core::status::Status;

use crate::control::query_status;
use crate::lab::{wait_for, Lab, BRIDGE_MAC};
use crate::pktgen::{now_ns, SendReport, SinkReport};

/// The bond's address, on bond0 in the host namespace.
pub const HOST_ADDR: &str = "10.77.0.1/24";
/// The neighbour's address: the switch's bridge br0, the ARP target.
pub const NEIGHBOUR: &str = "10.77.0.2";

/// How the failure is detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Detection {
    /// Carrier loss: netlink events and the workers' TX-failure hint, with
    /// `miimon` polling as the safety net.
    Carrier,
    /// The ARP monitor (`arp_interval` 100 ms, `arp_missed_max` 2,
    /// `arp_validate all`, no miimon): the path dies with carrier up.
    Arp,
    /// No failure: the daemon is restarted (SIGTERM, then a new start that
    /// adopts bond0); what is lost is the time no daemon forwards.
    Restart,
}

/// How long the stream runs on after the last status query before the
/// cut.
const SETTLE: Duration = Duration::from_millis(30);

/// What a failover run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailoverReport {
    /// How the failure was detected.
    pub detection: Detection,
    /// Offered rate, frames per second.
    pub rate: u64,
    /// Frames sent.
    pub sent: u64,
    /// Frames that never arrived, in all.
    pub lost: u64,
    /// The longest run of consecutive missing frames: the failover's loss
    /// (scattered losses elsewhere are the receiver's, not the bond's).
    pub failover_lost: u64,
    /// `failover_lost / rate`, in milliseconds.
    pub lost_ms: f64,
    /// Frames the bond sent on eth0 and eth1 during the run.
    pub per_link: Vec<u64>,
    /// Frames of the stream that reached the switch ports sw-p0 and sw-p1,
    /// when the run counted them ([`Run::per_port`]). With ARP detection,
    /// sw-p0's count includes what it received after it left the bridge.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_port: BTreeMap<String, u64>,
    /// The bond's own reaction, in microseconds: from when its control loop
    /// read the first sign of the failure (the carrier event or a failed
    /// transmission; the ARP monitor's verdict) to the new plan's hand-over
    /// to the workers (the status's `last_failover_us`). What is lost on top
    /// is the kernel's: its delivery of the event, and the frames already
    /// in the dead slave's rings. `None` without a failover (a restart).
    #[serde(default)]
    pub reaction_us: Option<u64>,
    /// Carrier detection: the failover timed from the cut, and its loss
    /// split by when the lost frames were sent (`None` for the other
    /// detections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<FailoverSplit>,
    /// Why the figure is rejected, if it is: frames lost outside the
    /// failover window mean the lab itself lost frames at this rate, so the
    /// failover's loss cannot be told from the lab's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
}

impl FailoverReport {
    /// Frames lost outside the longest gap (the failover's window).
    pub fn lost_outside(&self) -> u64 {
        self.lost.saturating_sub(self.failover_lost)
    }

    /// One line for an operator: the figure, or why there is none.
    pub fn summary(&self) -> String {
        let reaction = self
            .reaction_us
            .map_or(String::new(), |us| format!("; the bond reacted in {us} us"));
        let head = format!(
            "failover ({:?} detection) at {} frames/s: {} frames lost in the failover = {:.2} ms of \
             traffic ({} lost in all of {} sent; per link {:?}){reaction}",
            self.detection,
            self.rate,
            self.failover_lost,
            self.lost_ms,
            self.lost,
            self.sent,
            self.per_link
        );
        let head = match &self.split {
            Some(x) => format!(
                "{head}\n  from the carrier cut (a {:.0} us request): first frame after it (through the \
                 new slave) at {} us (sent at {} us), last before it at {} us; of the window's frames \
                 {} were in flight at the cut and {} sent after it (schedule late by at most {:.0} \
                 us); {} frames handed to the dead slave were lost",
                x.cut_us,
                x.first_frame_us.map_or("-".into(), |u| format!("{u:.0}")),
                x.first_frame_sent_us.map_or("-".into(), |u| format!("{u:.0}")),
                x.last_frame_us.map_or("-".into(), |u| format!("{u:.0}")),
                x.shown(x.in_flight_at_cut),
                x.shown(x.sent_after_cut),
                x.schedule_late_us,
                x.to_dead_slave
            ),
            None => head,
        };
        match &self.rejected {
            Some(why) => format!("{head}\nREJECTED: {why}"),
            None => head,
        }
    }
}

/// Where the failover's frames went, timed against the carrier cut. Times
/// are the kernel's (CLOCK_REALTIME): the cut is read around the netlink
/// request that takes the switch port down (the carrier of the bond's
/// slave goes within that request), arrivals are the switch-side sink's
/// kernel stamps, and a frame's sending time is the generator's schedule,
/// corrected by the rounds it wrote late.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct FailoverSplit {
    /// How long the cut's request took: the uncertainty of the carrier
    /// event's time, which the figures below take as the request's start.
    pub cut_us: f64,
    /// The reaction: from the carrier cut to the first frame of the stream
    /// that arrived after it (the cut's end), so through the new slave.
    /// Bounded by the kernel's delivery of the carrier event, the bond's own
    /// reaction ([`FailoverReport::reaction_us`]), a worker's next batch,
    /// and the new slave's transmission and delivery; and, where no frame
    /// was lost, by when the generator next sent. `None`: no frame came
    /// after the cut.
    pub first_frame_us: Option<f64>,
    /// When that first frame was sent, from the cut (by the generator's
    /// schedule and late rounds): positive when the generator sent nothing
    /// between the cut and then, so that this much of
    /// [`FailoverSplit::first_frame_us`] was the generator's silence, not
    /// the bond's reaction.
    #[serde(default)]
    pub first_frame_sent_us: Option<f64>,
    /// When the last frame before the cut arrived, from the cut (negative:
    /// before it).
    pub last_frame_us: Option<f64>,
    /// Lost frames (the longest gap's) that the generator had sent before
    /// the cut: they were in the bond's rings (bond0's queue, a worker's
    /// batch, the dead slave's TX ring) when the carrier went. Bounded by
    /// the offered rate times the bond's forwarding latency, plus what the
    /// dead slave's ring held.
    pub in_flight_at_cut: u64,
    /// Lost frames the generator sent after the cut: those the bond still
    /// handed the dead slave (or dropped) while it reacted. Bounded by the
    /// offered rate times the reaction.
    pub sent_after_cut: u64,
    /// Frames the bond handed the dead slave that never arrived: its
    /// transmissions during the run less the stream's frames received
    /// below the gap (all of which went through it), at most the gap; 0
    /// without one. The transmissions include the few frames that are not
    /// the stream's (ARP, IPv6 neighbour discovery: about ten a run here),
    /// hence the cap.
    pub to_dead_slave: u64,
    /// The longest delay past its schedule of a generator round due within
    /// 5 ms of the cut or among the gap's frames (0: on schedule): the
    /// uncertainty of the split between the two counts above, and how much
    /// of the reaction was the generator's silence.
    pub schedule_late_us: f64,
    /// Whether the sending times above are known: not when the generator
    /// ran late more often than it records (a lab far past its capacity),
    /// and then the two lost counts are 0 and the first frame's sending
    /// time is absent.
    #[serde(default)]
    pub sent_times_known: bool,
}

/// How far either side of the cut the generator's lateness counts.
const LATE_WINDOW_NS: u64 = 5_000_000;

impl FailoverSplit {
    /// `n`, one of the counts by sending time, as shown: "?" when the
    /// sending times are unknown.
    pub fn shown(&self, n: u64) -> String {
        if self.sent_times_known {
            n.to_string()
        } else {
            "?".into()
        }
    }

    /// Splits what `sink` saw around its cut (`None` if it had none), with
    /// `sent` the generator's report at `rate` and `to_dead` the dead
    /// slave's transmissions during the run.
    pub fn new(
        sink: &SinkReport,
        sent: &SendReport,
        rate: u64,
        to_dead: u64,
    ) -> Option<FailoverSplit> {
        let around = sink.around_cut?;
        let cut = around.cut_ns;
        let us = |[_, ns]: [u64; 2]| (ns as f64 - cut[0] as f64) / 1000.0;
        let mut x = FailoverSplit {
            cut_us: cut[1].saturating_sub(cut[0]) as f64 / 1000.0,
            first_frame_us: around.first_after.map(us),
            sent_times_known: true,
            first_frame_sent_us: around
                .first_after
                .and_then(|[seq, _]| Some(us([seq, sent.sent_at_ns(seq, rate)?]))),
            last_frame_us: around.last_before.map(us),
            ..FailoverSplit::default()
        };
        let mut late = sent
            .late
            .iter()
            .filter_map(|&[first, ns]| Some((sent.due_ns(first, rate)?, ns)))
            .filter(|&(due, _)| {
                due.saturating_add(LATE_WINDOW_NS) >= cut[0]
                    && due <= cut[1].saturating_add(LATE_WINDOW_NS)
            })
            .map(|(_, ns)| ns)
            .max()
            .unwrap_or(0);
        // The split needs the generator's schedule (the AF_XDP generator
        // with a rate); without one the counts stay 0.
        if let (Some(e), Some(_)) = (sink.longest_gap_edges, sent.due_ns(0, rate)) {
            for seq in e.before + 1..e.after {
                let (Some(at), Some(due)) = (sent.sent_at_ns(seq, rate), sent.due_ns(seq, rate))
                else {
                    x.sent_times_known = false;
                    x.in_flight_at_cut = 0;
                    x.sent_after_cut = 0;
                    break;
                };
                late = late.max(at.saturating_sub(due));
                if at < cut[0] {
                    x.in_flight_at_cut += 1;
                } else {
                    x.sent_after_cut += 1;
                }
            }
            x.to_dead_slave = to_dead
                .saturating_sub(e.received_before)
                .min(e.after - e.before - 1);
        }
        x.schedule_late_us = late as f64 / 1000.0;
        if around.first_after.is_some() && x.first_frame_sent_us.is_none() {
            x.sent_times_known = false;
        }
        Some(x)
    }
}

/// One failover run: the stream, and where in it the cut comes.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// How the path fails (and so how the failure is detected).
    pub detection: Detection,
    /// Offered rate, frames per second.
    pub rate: u64,
    /// Frames in the stream.
    pub count: u64,
    /// The cut comes once `cut_after` of the stream (that many seconds at
    /// `rate`, at most half of it) has left on eth0: a place in the stream,
    /// not a time, so that a slow start cannot move it.
    pub cut_after: Duration,
    /// Also count the stream per switch port, with a second sink on sw-p0
    /// and sw-p1: the tests' check that the traffic moved. Off for
    /// measurements, where the second sink would compete for the CPU.
    pub per_port: bool,
}

/// The failover topology, before the bond starts: namespace "host" with
/// eth0 and eth1, namespace "switch" with their far ends sw-p0 and sw-p1 in
/// bridge br0 ([`NEIGHBOUR`]/24, the ARP target; see [`Lab::bridge`]).
/// Whatever must hold when the bond starts (links down, sysctls) is set up
/// here; then [`FailoverTopology::start`].
#[derive(Debug)]
pub struct FailoverTopology {
    /// The lab (removed on drop).
    pub lab: Lab,
    /// Host namespace.
    pub host: String,
    /// Switch namespace.
    pub sw: String,
    exe: PathBuf,
}

impl FailoverTopology {
    /// Builds the namespaces, links and bridge. `exe` is the xbond binary.
    pub fn new(exe: &Path) -> Result<FailoverTopology> {
        let mut lab = Lab::new("fo")?;
        let host = lab.netns("host")?;
        let sw = lab.netns("switch")?;
        lab.veth(&host, "eth0", &sw, "sw-p0")?;
        lab.veth(&host, "eth1", &sw, "sw-p1")?;
        lab.bridge(&sw, &["sw-p0", "sw-p1"], &format!("{NEIGHBOUR}/24"))?;
        Ok(FailoverTopology {
            lab,
            host,
            sw,
            exe: exe.to_path_buf(),
        })
    }

    /// Starts xbond in the host namespace with `config` (see
    /// [`FailoverLab::config`]) and puts [`HOST_ADDR`] on bond0; returns
    /// once the control socket answers.
    pub fn start(self, config: &str) -> Result<FailoverLab> {
        let FailoverTopology {
            mut lab,
            host,
            sw,
            exe,
        } = self;
        let sock = lab.start_xbond(&exe, &host, "xbond", config)?;
        lab.exec(&host, &["ip", "addr", "add", HOST_ADDR, "dev", "bond0"])?;
        Ok(FailoverLab {
            lab,
            host,
            sw,
            sock,
            exe,
            config: config.to_string(),
        })
    }
}

/// The failover topology with the bond running: see [`FailoverTopology`].
#[derive(Debug)]
pub struct FailoverLab {
    /// The lab (removed on drop).
    pub lab: Lab,
    /// Host namespace.
    pub host: String,
    /// Switch namespace.
    pub sw: String,
    /// The bond's control socket.
    pub sock: String,
    exe: PathBuf,
    /// The bond's configuration, for a restart.
    config: String,
}

impl FailoverLab {
    /// Builds the topology and starts the bond with `detection`'s
    /// configuration; returns once eth0 is the active slave.
    pub fn new(exe: &Path, detection: Detection) -> Result<FailoverLab> {
        let fl = FailoverTopology::new(exe)?.start(&Self::config(detection))?;
        let ready = wait_for(Duration::from_secs(10), || {
            query_status(&fl.sock)
                .ok()
                .filter(|s| s.active.as_deref() == Some("eth0"))
        });
        anyhow::ensure!(ready.is_some(), "the bond did not make eth0 active");
        Ok(fl)
    }

    /// The bond's configuration file for `detection`: bond0 over eth0 and
    /// eth1, active-backup, primary eth0.
    pub fn config(detection: Detection) -> String {
        Self::config_with(detection, "")
    }

    /// As [`FailoverLab::config`], with `extra` (more options, one a line)
    /// appended.
    pub fn config_with(detection: Detection, extra: &str) -> String {
        let monitor = match detection {
            Detection::Carrier | Detection::Restart => "miimon = 100\n".to_string(),
            Detection::Arp => format!(
                "miimon = 0\narp_interval = 100\narp_missed_max = 2\narp_validate = \"all\"\narp_ip_target = [\"{NEIGHBOUR}\"]\n"
            ),
        };
        format!(
            "name = \"bond0\"\nslaves = [\"eth0\", \"eth1\"]\nmode = \"active-backup\"\nprimary = \"eth0\"\n{monitor}{extra}\n"
        )
    }

    /// Streams `count` frames at `rate` into bond0, cuts eth0's path after
    /// `cut_after` of the stream, and reports what was lost: [`FailoverLab::measure`]
    /// without the per-port count.
    pub fn run(
        &mut self,
        detection: Detection,
        rate: u64,
        count: u64,
        cut_after: Duration,
    ) -> Result<FailoverReport> {
        self.measure(&Run {
            detection,
            rate,
            count,
            cut_after,
            per_port: false,
        })
    }

    /// Takes sw-p0 down (so eth0 loses its carrier) with a netlink request
    /// from a thread in the switch namespace; returns the request's start
    /// and end (nanoseconds since the Unix epoch), between which the
    /// carrier went.
    fn cut_carrier(&self) -> Result<(u64, u64)> {
        let ns = Path::new("/run/netns").join(&self.sw);
        std::thread::scope(|s| {
            s.spawn(|| -> Result<(u64, u64)> {
                xbond_xdp::sys::enter_netns(&ns)
                    .with_context(|| format!("entering {}", ns.display()))?;
                let mut nl = xbond_xdp::netlink::Netlink::open()?;
                nl.link("sw-p0")?;
                let start = now_ns();
                nl.set_up("sw-p0", false)?;
                Ok((start, now_ns()))
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the thread that cuts the carrier panicked"))?
        })
    }

    /// Streams `run.count` frames at `run.rate` into bond0 (the AF_XDP
    /// sender), counted by a sink on br0 (what reached the neighbour); cuts
    /// eth0's path once `run.cut_after` of the stream has left on eth0; and
    /// reports what was lost. With carrier detection the far end goes down
    /// (eth0 loses carrier); with ARP detection it leaves the switch and
    /// stops answering ARP (carrier stays up); with a restart the daemon is
    /// stopped and started again with the same configuration.
    pub fn measure(&mut self, run: &Run) -> Result<FailoverReport> {
        let exe = self.exe.display().to_string();
        let sw = self.sw.clone();
        // Written once the carrier is cut; read by the sink when it stops.
        let cut_file = self.lab.dir().join("cut");
        let _ = std::fs::remove_file(&cut_file);
        self.lab
            .start_sink_cut(&self.exe, &sw, "sink", &["br0"], 7, run.count, &cut_file)?;
        if run.per_port {
            self.lab
                .start_sink(&self.exe, &sw, "ports", &["sw-p0", "sw-p1"], 7, run.count)?;
        }
        let before = query_status(&self.sock)?;
        let (src_ip, c, r) = (
            HOST_ADDR.split('/').next().unwrap_or(HOST_ADDR),
            run.count.to_string(),
            run.rate.to_string(),
        );
        self.lab.spawn(
            &self.host,
            "sender",
            &[
                &exe,
                "pktgen",
                "send",
                "--engine",
                "af_xdp",
                "--iface",
                "bond0",
                "--dst-mac",
                BRIDGE_MAC,
                "--src-ip",
                src_ip,
                "--dst-ip",
                NEIGHBOUR,
                "--count",
                &c,
                "--rate",
                &r,
                "--stream",
                "7",
            ],
        )?;
        let cut_at = ((run.cut_after.as_secs_f64() * run.rate as f64) as u64)
            .min(run.count / 2)
            .max(1);
        let sent_on_eth0 = |s: &Status| {
            s.slaves[0]
                .runtime
                .tx_frames
                .saturating_sub(before.slaves[0].runtime.tx_frames)
        };
        let reached = wait_for(run.cut_after + Duration::from_secs(10), || {
            query_status(&self.sock)
                .ok()
                .filter(|s| sent_on_eth0(s) >= cut_at)
        });
        anyhow::ensure!(
            reached.is_some(),
            "the stream never reached frame {cut_at} on eth0, where the cut was to come"
        );
        // The status queries above take CPU from the bond's worker on a
        // small machine (the stream stalled up to 1.5 ms after the last
        // one): the cut comes once that is over, in a steady stream.
        std::thread::sleep(SETTLE);
        match run.detection {
            Detection::Carrier => {
                let (start, end) = self.cut_carrier()?;
                std::fs::write(&cut_file, format!("{start} {end}\n"))
                    .with_context(|| format!("writing {}", cut_file.display()))?;
            }
            Detection::Arp => {
                self.lab
                    .exec(&sw, &["ip", "link", "set", "sw-p0", "arp", "off"])?;
                self.lab
                    .exec(&sw, &["ip", "link", "set", "sw-p0", "nomaster"])?;
            }
            Detection::Restart => {
                anyhow::ensure!(self.lab.stop("xbond")?, "xbond did not exit cleanly");
                self.sock = self
                    .lab
                    .start_xbond(&self.exe, &self.host, "xbond", &self.config)?;
            }
        }
        let out = self.lab.wait("sender", Duration::from_secs(60))?;
        let sent: SendReport = out
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .with_context(|| format!("the sender printed no report: {out}"))?;
        let rep = self.lab.sink_report("sink")?;
        let per_port = if run.per_port {
            self.lab.sink_report("ports")?.per_iface
        } else {
            BTreeMap::new()
        };
        let after = query_status(&self.sock)?;
        let reaction_us = match run.detection {
            Detection::Restart => None,
            _ => after
                .runtime
                .last_failover_us
                .filter(|_| after.runtime.failovers > before.runtime.failovers),
        };
        let outside = rep.lost.saturating_sub(rep.longest_gap);
        let per_link: Vec<u64> = after
            .slaves
            .iter()
            .zip(&before.slaves)
            .map(|(a, b)| a.runtime.tx_frames.saturating_sub(b.runtime.tx_frames))
            .collect();
        let split = FailoverSplit::new(
            &rep,
            &sent,
            run.rate,
            per_link.first().copied().unwrap_or(0),
        );
        Ok(FailoverReport {
            detection: run.detection,
            rate: run.rate,
            sent: sent.sent,
            lost: rep.lost,
            failover_lost: rep.longest_gap,
            lost_ms: rep.longest_gap as f64 * 1000.0 / run.rate.max(1) as f64,
            per_link,
            per_port,
            reaction_us,
            split,
            rejected: (outside > 0).then(|| {
                format!(
                    "{outside} frames were lost outside the failover window: this machine's lab \
                     loses frames at {} frames/s by itself, so the failover's loss is not \
                     measured cleanly; try a lower --rate",
                    run.rate
                )
            }),
        })
    }
}
