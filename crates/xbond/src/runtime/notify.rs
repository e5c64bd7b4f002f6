//! systemd notifications (Type=notify): READY, WATCHDOG, STOPPING, sent
//! from a thread of their own.

use sd_notify::NotifyState;
use tracing::{debug, warn};

/// What the control loop tells systemd.
#[derive(Debug)]
pub(super) enum Notice {
    /// READY=1 with a STATUS= line.
    Ready(String),
    /// WATCHDOG=1.
    Watchdog,
    /// STOPPING=1.
    Stopping,
}

/// Sends sd_notify messages from a thread of its own: the notify socket is
/// a blocking datagram socket, and a service manager that does not read it
/// must never hold up the control loop (and with it a failover). A notice
/// that finds the thread still busy is dropped.
pub(super) struct Notifier {
    tx: Option<crossbeam::channel::Sender<Notice>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Notifier {
    pub(super) fn start(enabled: bool) -> Notifier {
        if !enabled || std::env::var_os("NOTIFY_SOCKET").is_none() {
            return Notifier {
                tx: None,
                thread: None,
            };
        }
        let (tx, rx) = crossbeam::channel::bounded::<Notice>(4);
        let thread = std::thread::Builder::new()
            .name("xbond-notify".into())
            .spawn(move || {
                xbond_xdp::privilege::plain_thread();
                for n in rx {
                    let r = match &n {
                        Notice::Ready(status) => {
                            sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)])
                        }
                        Notice::Watchdog => sd_notify::notify(&[NotifyState::Watchdog]),
                        Notice::Stopping => sd_notify::notify(&[NotifyState::Stopping]),
                    };
                    // Only readiness matters to a caller; a manager that
                    // went away later (the ifupdown hook's socket) is not.
                    match (&n, r) {
                        (_, Ok(())) => {}
                        (Notice::Ready(_), Err(e)) => warn!("sd_notify READY: {e}"),
                        (_, Err(e)) => debug!("sd_notify {n:?}: {e}"),
                    }
                }
            })
            .ok();
        Notifier {
            tx: thread.as_ref().map(|_| tx),
            thread,
        }
    }

    pub(super) fn send(&self, n: Notice) {
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(n);
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has sent what it has;
        // it is not waited for if the socket blocks.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}
