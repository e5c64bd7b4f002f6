//! The bond at run time, as a library: [`Runtime`] sets up the host, starts
//! the data plane and runs the control loop on a thread of its own (link
//! events and polls into the bond core, the core's decisions out to the
//! workers, the XDP programs, the interfaces and the wire), until it is
//! stopped. `xbond run` is this and a signal handler.
//!
//! The bond's host side ([`Upper`]) is the `bond0` veth pair the host
//! configures as it would a kernel bond, an existing interface (an L2
//! appliance joining two NICs to a third), or an in-process channel of
//! frames (the embedding program's own code is the host). What happens is
//! reported as [`Event`]s that the embedder polls; nothing calls back.
//!
//! ```no_run
//! use std::time::Duration;
//! use xbond::runtime::{Runtime, RuntimeOptions, Upper};
//! use xbond_core::config::BondConfig;
//!
//! let cfg = BondConfig::from_toml_str(
//!     "name = \"bond0\"\nslaves = [\"eth0\", \"eth1\"]\nmode = \"active-backup\"\nmiimon = 100",
//! )?;
//! let rt = Runtime::start(cfg, RuntimeOptions { upper: Upper::Channel, ..Default::default() })?;
//! let frames = rt.upper_channel().expect("an in-process upper port");
//! while let Some(frame) = frames.recv(Duration::from_secs(1)) {
//!     // A frame a slave delivered: answer it, forward it, count it...
//!     let _ = frames.send(frame);
//!     while let Some(ev) = rt.events().try_next() {
//!         println!("{ev}");
//!     }
//! }
//! rt.stop()?;
//! # Ok::<(), anyhow::Error>(())
//! ```

mod control_loop;
mod host;
mod mtu;
mod notify;
mod status;
mod uppers;
mod words;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use crossbeam::channel::{Receiver, Sender};
use xbond_core::config::BondConfig;
use xbond_core::status::Status;
use xbond_xdp::channel::UpperChannel;
use xbond_xdp::sys::Waker;
pub use xbond_xdp::worker::{InjectedFault, ZeroCopy, SPIN_BEFORE_SLEEP};

pub use mtu::MtuState;
pub use status::status;

/// The bond's host side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Upper {
    /// A veth pair: `bond0` (the config's `name`) for the host, the
    /// config's `peer_name` for the data plane. Created, or adopted when an
    /// earlier run made it, so that what the host configured on `bond0`
    /// stays; its carrier follows the bond; bond0's promiscuous and
    /// multicast settings are passed down to the slaves.
    #[default]
    VethPair,
    /// An existing interface, left as it is except that it gets the XDP
    /// program (an L2 appliance: frames from it go out on the slaves, frames
    /// from the slaves go out on it). The slaves are put in promiscuous mode,
    /// since the frames are for any address; its carrier is not driven.
    Interface(String),
    /// An in-process channel of frames: [`Runtime::upper_channel`], shared
    /// by all queues; the slaves are in promiscuous mode.
    Channel,
}

/// How the runtime runs, beyond the bond's config.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// The bond's host side.
    pub upper: Upper,
    /// Try zero-copy AF_XDP binds first.
    pub zero_copy: ZeroCopy,
    /// Benchmark baseline: the same worker and sockets with the bond logic
    /// bypassed (first slave only).
    pub raw_forwarder: bool,
    /// How long workers busy-poll before sleeping.
    pub busy_poll: Duration,
    /// How long a worker waits after a pass that took few frames, to take
    /// the next in a batch (zero: no wait; see
    /// [`xbond_xdp::worker::run_queues`]).
    pub coalesce: Duration,
    /// Serve `xbond status` on the config's control socket.
    pub control_socket: bool,
    /// Tell systemd (Type=notify, watchdog) when `NOTIFY_SOCKET` is set.
    pub systemd: bool,
    /// Test-only: a fault for the worker of queue 0.
    pub fault: Option<InjectedFault>,
    /// Readable when a stop signal arrived (a self-pipe): wakes the control
    /// loop at once, so a stop (and a restart) waits for no timer.
    pub stop_fd: Option<std::os::fd::RawFd>,
    /// The file the config came from: `xbond ctl --save` writes changes
    /// back to it.
    pub config_path: Option<std::path::PathBuf>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            upper: Upper::VethPair,
            zero_copy: ZeroCopy::Try,
            raw_forwarder: false,
            busy_poll: SPIN_BEFORE_SLEEP,
            coalesce: Duration::ZERO,
            control_socket: true,
            systemd: true,
            fault: None,
            stop_fd: None,
            config_path: None,
        }
    }
}

/// Something that happened to the bond.
///
/// ```
/// use xbond::runtime::Event;
///
/// let ev = Event::ActiveChanged { old: Some("eno1".into()), new: Some("eno2".into()) };
/// assert_eq!(ev.to_string(), "active slave eno1 -> eno2");
/// assert_eq!(Event::Transmitting(vec![]).to_string(), "transmitting on no slave");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The bond is up and forwarding (the first event).
    Started,
    /// The bond's carrier (bond0's, with the veth pair) became this.
    Carrier(bool),
    /// The active slave changed (modes with one).
    ActiveChanged {
        /// The slave that was active.
        old: Option<String>,
        /// The slave that is active now.
        new: Option<String>,
    },
    /// A slave's link was committed up or down (after updelay/downdelay).
    Link {
        /// The slave.
        slave: String,
        /// Up or down.
        up: bool,
    },
    /// The slaves that transmit changed: a failover, or in 802.3ad a port
    /// joining or leaving the distributing aggregator.
    Transmitting(Vec<String>),
    /// The control loop ended on an error (a worker died); the bond has
    /// stopped and [`Runtime::stop`] returns the error.
    Failed(String),
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let or_none = |s: &Option<String>| s.clone().unwrap_or_else(|| "none".into());
        match self {
            Event::Started => write!(f, "started"),
            Event::Carrier(up) => write!(f, "carrier {}", if *up { "up" } else { "down" }),
            Event::ActiveChanged { old, new } => {
                write!(f, "active slave {} -> {}", or_none(old), or_none(new))
            }
            Event::Link { slave, up } => {
                write!(f, "link {slave} {}", if *up { "up" } else { "down" })
            }
            Event::Transmitting(s) if s.is_empty() => write!(f, "transmitting on no slave"),
            Event::Transmitting(s) => write!(f, "transmitting on {}", s.join(", ")),
            Event::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

/// Events queued beyond this are dropped (and counted) until the embedder
/// reads again.
pub const EVENT_QUEUE: usize = 1024;

/// The runtime's events, in order.
#[derive(Debug)]
pub struct Events {
    rx: Receiver<Event>,
    dropped: Arc<AtomicU64>,
}

impl Events {
    /// The next event, if one is waiting.
    pub fn try_next(&self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    /// The next event, waiting up to `timeout`.
    pub fn next_timeout(&self, timeout: Duration) -> Option<Event> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Events dropped because nobody read them.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Where the control loop sends its events.
#[derive(Debug, Clone)]
struct EventSink {
    tx: Sender<Event>,
    dropped: Arc<AtomicU64>,
}

impl EventSink {
    fn send(&self, e: Event) {
        if self.tx.try_send(e).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A running bond.
#[derive(Debug)]
pub struct Runtime {
    name: String,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    events: Events,
    status_tx: Sender<Sender<Status>>,
    channel: Option<UpperChannel>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
    /// The Prometheus endpoint, when `metrics_listen` is set.
    _metrics: Option<crate::metrics::MetricsServer>,
}

/// What the control thread reports once set-up is done.
type Ready = Result<Option<UpperChannel>>;

impl Runtime {
    /// Sets up the host and starts the bond described by `cfg` (validated,
    /// e.g. by [`BondConfig::from_toml_str`]). Returns once the bond
    /// forwards, or with the error that stopped the set-up; a failed start
    /// leaves the host as it was.
    pub fn start(cfg: BondConfig, opts: RuntimeOptions) -> Result<Runtime> {
        let name = cfg.name.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let waker = Arc::new(Waker::new().context("eventfd")?);
        let (events_tx, events_rx) = crossbeam::channel::bounded(EVENT_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let sink = EventSink {
            tx: events_tx,
            dropped: dropped.clone(),
        };
        let (status_tx, status_rx) = crossbeam::channel::bounded::<Sender<Status>>(16);
        // Bound before anything on the host changes: a taken port refuses
        // the start.
        let metrics = cfg
            .metrics_listen
            .as_deref()
            .map(|addr| {
                crate::metrics::MetricsServer::start(addr, status_tx.clone(), waker.clone())
            })
            .transpose()?;
        let (ready_tx, ready_rx) = crossbeam::channel::bounded::<Ready>(1);
        let thread = {
            let (stop, waker) = (stop.clone(), waker.clone());
            std::thread::Builder::new()
                .name(format!("xbond-{name}"))
                .spawn(move || {
                    let ctl = control_loop::Controller::start(
                        cfg,
                        opts,
                        stop,
                        waker,
                        sink.clone(),
                        status_rx,
                    );
                    let mut ctl = match ctl {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = ready_tx.send(Err(anyhow!("{e:#}")));
                            return Err(e);
                        }
                    };
                    let _ = ready_tx.send(Ok(ctl.upper_channel()));
                    sink.send(Event::Started);
                    let r = ctl.run();
                    if let Err(e) = &r {
                        sink.send(Event::Failed(format!("{e:#}")));
                    }
                    r
                })
                .context("spawning the control thread")?
        };
        let channel = match ready_rx.recv() {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                return Err(match thread.join() {
                    Ok(Err(e)) => e,
                    _ => anyhow!("{name}: the control thread ended during set-up"),
                })
            }
        };
        Ok(Runtime {
            name,
            stop,
            waker,
            events: Events {
                rx: events_rx,
                dropped,
            },
            status_tx,
            channel,
            thread: Some(thread),
            _metrics: metrics,
        })
    }

    /// The bond's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What happened, in order.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// The program's end of an in-process upper port ([`Upper::Channel`]).
    pub fn upper_channel(&self) -> Option<&UpperChannel> {
        self.channel.as_ref()
    }

    /// The bond's status now: the `/proc/net/bonding` view and the data
    /// plane's counters.
    pub fn status(&self) -> Result<Status> {
        let (tx, rx) = crossbeam::channel::bounded(1);
        self.status_tx
            .send(tx)
            .map_err(|_| anyhow!("{}: the bond has stopped", self.name))?;
        self.waker.wake();
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(|_| anyhow!("{}: the control loop did not answer", self.name))
    }

    /// The flag that stops the bond when set (e.g. from a signal handler;
    /// wake the loop with [`RuntimeOptions::stop_fd`] too).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Whether the control loop has ended (stopped, or failed).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits until the bond stops (its stop flag, or an error); returns how
    /// it ended.
    pub fn wait(mut self) -> Result<()> {
        self.join()
    }

    /// Stops the bond and puts the host back (slave MACs and offloads; with
    /// the veth pair, bond0 stays, without carrier); returns the error that
    /// had stopped it, if one did.
    pub fn stop(mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        self.waker.wake();
        self.join()
    }

    fn join(&mut self) -> Result<()> {
        match self.thread.take().map(|t| t.join()) {
            None => Ok(()),
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(anyhow!("{}: the control thread panicked", self.name)),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.waker.wake();
        let _ = self.join();
    }
}
