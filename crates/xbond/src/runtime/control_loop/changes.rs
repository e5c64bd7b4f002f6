//! Changes asked over the control socket (`xbond ctl`): the active slave
//! and the options a running bond takes, each logged.

use std::time::Instant;

use serde_json::{json, Value};
use tracing::{info, warn};
use xbond_core::bond::{key_values, Bond, SlaveSpec};
use xbond_core::config::{with_kernel_options, BondConfig};
use xbond_core::options::Mode;
use xbond_core::request::Request as Asked;
use xbond_core::wire::ETH_P_SLOW;
use xbond_xdp::packet::PacketSocket;

use super::{host, mtu, words, Controller};
use crate::control::Request;
use crate::runstate;

impl Controller {
    /// Answers one control request.
    pub(super) fn answer(&mut self, req: Request) {
        let r = match &req.asked {
            Asked::Status => {
                let s = self.status();
                req.reply(&s);
                return;
            }
            Asked::ActiveSlave(name) => self.ctl_active_slave(name),
            Asked::Set(pairs) => self.ctl_set(pairs),
            Asked::Enslave(name) => self.ctl_enslave(name),
            Asked::Release(name) => self.ctl_release(name),
        };
        if let Err(e) = &r {
            warn!("{}: xbond ctl refused: {e}", self.cfg.name);
        }
        req.answer(r);
    }

    fn ctl_active_slave(&mut self, name: &str) -> Result<Value, String> {
        self.bond.set_active_slave(name, Instant::now())?;
        info!("{}: active slave set to {name} (xbond ctl)", self.cfg.name);
        Ok(json!({ "active": name }))
    }

    fn ctl_set(&mut self, pairs: &[(String, String)]) -> Result<Value, String> {
        let new = with_kernel_options(self.bond.config(), pairs).map_err(|e| e.to_string())?;
        let changed = self.bond.reconfigure(new, Instant::now())?;
        self.cfg = self.bond.config().clone();
        self.rx_check_every = super::rx_check_every(&self.cfg);
        let kv = key_values(&self.cfg);
        let toml: serde_json::Map<String, Value> = changed
            .iter()
            .map(|k| {
                (
                    k.clone(),
                    Value::String(kv.get(k).cloned().unwrap_or_default()),
                )
            })
            .collect();
        let said: Vec<String> = changed
            .iter()
            .map(|k| format!("{k} = {}", kv.get(k).map_or("", String::as_str)))
            .collect();
        if said.is_empty() {
            info!("{}: set {pairs:?}: unchanged (xbond ctl)", self.cfg.name);
        } else {
            info!("{}: {} (xbond ctl)", self.cfg.name, said.join(", "));
        }
        Ok(json!({
            "changed": changed,
            "toml": toml,
            "config": self.config_path.as_ref().map(|p| p.display().to_string()),
        }))
    }
}

/// The per-slave I/O of a new slave set, made before the bond changes.
struct SlaveIo {
    ifindexes: Vec<u32>,
    gone: Vec<bool>,
    slow: Vec<PacketSocket>,
    senders: Vec<Option<PacketSocket>>,
}

impl Controller {
    /// The bond's slaves, comma-separated.
    fn slave_list(&self) -> String {
        self.cfg.slaves.join(", ")
    }

    /// `enslave IF`: checked as a slave is at start, prepared as at start,
    /// then the core takes it (the others keep their state) and the data
    /// plane starts again with it.
    fn ctl_enslave(&mut self, name: &str) -> Result<Value, String> {
        let bond = self.cfg.name.clone();
        if self.cfg.slaves.iter().any(|s| s == name) {
            return Err(format!(
                "enslave {name}: already a slave of {bond}; slaves: {}",
                self.slave_list()
            ));
        }
        if name == bond || name == self.cfg.peer_name {
            return Err(format!("enslave {name}: that is {bond}'s own upper port"));
        }
        let link = self
            .nl
            .link(name)
            .map_err(|e| format!("enslave {name}: no such interface ({e})"))?;
        if let Some(m) = link.master {
            let master = self
                .nl
                .link_by_index(m)
                .map_or(format!("ifindex {m}"), |l| l.name);
            return Err(format!(
                "enslave {name}: it is enslaved to {master}; release it first (ip link set {name} nomaster)"
            ));
        }
        let (v4, v6) = self.nl.addresses(name).unwrap_or_default();
        let global6: Vec<_> = v6
            .iter()
            .filter(|a| (a.segments()[0] & 0xffc0) != 0xfe80)
            .collect();
        if !v4.is_empty() || !global6.is_empty() {
            let list: Vec<String> = v4
                .iter()
                .map(ToString::to_string)
                .chain(global6.iter().map(|a| a.to_string()))
                .collect();
            return Err(format!(
                "enslave {name}: it has addresses ({}); a slave carries none (ip addr flush dev {name}), {bond} does",
                list.join(", ")
            ));
        }
        let (rx, tx) = host::active_queues(name, &link);
        if rx != self.queues || tx < self.queues {
            return Err(format!(
                "enslave {name}: it has {rx} RX / {tx} TX queues but {bond} serves {} (ethtool -L {name} combined {})",
                self.queues, self.queues
            ));
        }
        let mut cfg = self.cfg.clone();
        cfg.slaves.push(name.to_string());
        cfg.validate().map_err(|e| format!("enslave {name}: {e}"))?;
        let (speed_mbps, full_duplex) = xbond_xdp::netlink::speed_duplex(name);
        let mut specs: Vec<SlaveSpec> = self.bond.slaves().iter().map(|s| s.spec.clone()).collect();
        specs.push(SlaveSpec {
            name: name.to_string(),
            perm_mac: link.perm_mac.filter(|m| !m.is_zero()).unwrap_or(link.mac),
            speed_mbps,
            full_duplex,
        });
        let old = self.cfg.slaves.clone();
        let io = self.prepare_io(&cfg.slaves, &old)?;
        host::prepare_rejoining(name, &link, &mut self.guard, &mut self.state);
        if let Err(e) = runstate::save(&self.state_path, &self.state) {
            warn!(
                "{bond}: could not save {}: {e:#}",
                self.state_path.display()
            );
        }
        if let Err(e) = self.nl.set_up(name, true) {
            warn!("{bond}: setting {name} up: {e}");
        }
        self.swap_bond(cfg, specs);
        mtu::pass_down(&mut self.nl, &self.cfg, &self.upper, self.mtu.mtu);
        self.replumb(io, format!("{name} enslaved"))?;
        info!("{}", words::enslaving(&bond, name));
        Ok(self.slaves_answer())
    }

    /// `release IF`: the core lets it go (the others keep their state), the
    /// data plane starts again without it, and it gets back its MAC,
    /// offloads, IPv6 and MTU.
    fn ctl_release(&mut self, name: &str) -> Result<Value, String> {
        let bond = self.cfg.name.clone();
        let Some(i) = self.cfg.slaves.iter().position(|s| s == name) else {
            return Err(format!(
                "release {name}: not a slave of {bond}; slaves: {}",
                self.slave_list()
            ));
        };
        if self.cfg.slaves.len() == 1 {
            return Err(format!(
                "release {name}: it is {bond}'s last slave; a bond keeps one (stop the bond instead: systemctl stop xbond@{bond})"
            ));
        }
        let was_active = self.bond.active() == Some(i);
        let mut cfg = self.cfg.clone();
        cfg.slaves.remove(i);
        cfg.prio.remove(name);
        cfg.ad_actor_port_prio.remove(name);
        if cfg.primary.as_deref() == Some(name) {
            cfg.primary = None;
        }
        cfg.validate().map_err(|e| format!("release {name}: {e}"))?;
        let specs: Vec<SlaveSpec> = self
            .bond
            .slaves()
            .iter()
            .filter(|s| s.spec.name != name)
            .map(|s| s.spec.clone())
            .collect();
        let old = self.cfg.slaves.clone();
        let io = self.prepare_io(&cfg.slaves, &old)?;
        self.swap_bond(cfg, specs);
        // Given back before the data plane starts again: whatever happens
        // next, the interface is no longer the bond's.
        self.guard.give_back(name);
        self.replumb(io, format!("{name} released"))?;
        self.macs_done.remove(name);
        self.state.originals.remove(name);
        if let Err(e) = runstate::save(&self.state_path, &self.state) {
            warn!(
                "{bond}: could not save {}: {e:#}",
                self.state_path.display()
            );
        }
        info!("{}", words::releasing(&bond, name, was_active));
        Ok(self.slaves_answer())
    }

    /// The answer to enslave/release: the slaves now, as the config writes
    /// them (for `--save`).
    fn slaves_answer(&self) -> Value {
        let kv = key_values(&self.cfg);
        json!({
            "slaves": self.cfg.slaves,
            "changed": ["slaves"],
            "toml": { "slaves": kv.get("slaves").cloned().unwrap_or_default() },
            "config": self.config_path.as_ref().map(|p| p.display().to_string()),
        })
    }

    /// The core with `cfg`'s slaves, keeping every other slave's state.
    fn swap_bond(&mut self, cfg: BondConfig, specs: Vec<SlaveSpec>) {
        let placeholder = Bond::new(self.cfg.clone(), Vec::new(), Instant::now());
        let old = std::mem::replace(&mut self.bond, placeholder);
        self.bond = old.with_slaves(cfg, specs, Instant::now());
        self.cfg = self.bond.config().clone();
    }

    /// Everything that can fail for a new slave set `names` (`old` were the
    /// slaves), before the bond changes: the interface indices (a gone
    /// slave keeps its last one) and the slow-protocol sockets; the per-slave
    /// state follows by name.
    fn prepare_io(&mut self, names: &[String], old: &[String]) -> Result<SlaveIo, String> {
        let was = |n: &String| old.iter().position(|o| o == n);
        let mut ifindexes = Vec::new();
        let mut gone = Vec::new();
        for n in names {
            match (self.nl.link(n), was(n)) {
                (Ok(l), _) => {
                    ifindexes.push(l.index);
                    gone.push(false);
                }
                (Err(_), Some(i)) if self.gone.get(i) == Some(&true) => {
                    ifindexes.push(self.ifindexes[i]);
                    gone.push(true);
                }
                (Err(e), _) => return Err(format!("{n}: {e}")),
            }
        }
        let mut slow = Vec::new();
        if self.cfg.mode == Mode::Ieee8023ad {
            // New slaves' sockets first: a failure leaves everything as it was.
            let mut fresh = Vec::new();
            for n in names.iter().filter(|n| was(n).is_none()) {
                let s = PacketSocket::open(n, ETH_P_SLOW)
                    .map_err(|e| format!("slow-protocol socket on {n}: {e}"))?;
                fresh.push((n.clone(), s));
            }
            let mut slow_old: Vec<Option<PacketSocket>> = std::mem::take(&mut self.slow)
                .into_iter()
                .map(Some)
                .collect();
            for n in names {
                let s = match was(n) {
                    Some(i) => slow_old.get_mut(i).and_then(Option::take),
                    None => fresh
                        .iter()
                        .position(|(f, _)| f == n)
                        .map(|k| fresh.swap_remove(k).1),
                };
                slow.extend(s);
            }
        }
        let mut senders = std::mem::take(&mut self.senders);
        let senders = names
            .iter()
            .map(|n| was(n).and_then(|i| senders.get_mut(i)?.take()))
            .collect();
        Ok(SlaveIo {
            ifindexes,
            gone,
            slow,
            senders,
        })
    }

    /// After the slave set changed: the per-slave state `io` (from
    /// [`Controller::prepare_io`]) takes over, the data plane starts again
    /// with the new set, and every carrier is read afresh.
    fn replumb(&mut self, io: SlaveIo, reason: String) -> Result<(), String> {
        let started = Instant::now();
        let names = self.cfg.slaves.clone();
        self.ifindexes = io.ifindexes;
        self.gone = io.gone;
        self.slow = io.slow;
        self.senders = io.senders;
        self.wait_fds = super::wait_fds(&self.waker, &self.slow, self.stop_fd);
        self.dp_cfg.mtu = self.mtu.mtu;
        self.dp_cfg.slaves = names.clone();
        let plan = self.bond.tx_plan();
        self.dp
            .restart(&self.dp_cfg, &self.ifindexes, plan, self.waker.clone())
            .map_err(|e| format!("the data plane did not start again: {e}; the bond stops"))?;
        self.after_restart();
        self.dp_restarts.0 += 1;
        self.dp_restarts.1 = reason;
        let _ = self.events.drain();
        self.poll_links();
        info!(
            "{}: data plane started again with {} in {} ms",
            self.cfg.name,
            names.join(", "),
            started.elapsed().as_millis()
        );
        Ok(())
    }
}
