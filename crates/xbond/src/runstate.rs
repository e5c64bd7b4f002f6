//! State kept across restarts of one bond's daemon, beside its control socket
//! (`/run/xbond/<bond>.state`, which the systemd unit preserves across
//! restarts): the active slave, so that a restart causes no failover, and
//! what the slaves were before xbond first changed them (MAC, VLAN offloads,
//! IPv6),
//! so that what a crash left changed is still given back at the next clean
//! exit. `xbond down` removes it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use xbond_core::config::BondConfig;
use xbond_core::options::MacAddr;

/// A slave as it was before xbond changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Original {
    /// Its MAC address.
    pub mac: MacAddr,
    /// Offloads xbond turned off, with the value they had.
    pub offloads: Vec<(String, bool)>,
    /// xbond turned IPv6 off on it (it was on).
    #[serde(default)]
    pub ipv6_turned_off: bool,
    /// Its MTU (xbond gives it bond0's).
    #[serde(default)]
    pub mtu: Option<u32>,
}

/// What a restart resumes from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// The active slave's name, in modes that have one.
    pub active: Option<String>,
    /// Per slave, as it was before the first start.
    #[serde(default)]
    pub originals: BTreeMap<String, Original>,
}

impl RunState {
    /// The active slave's index among `slaves`, if it is still one of them.
    pub fn active_index(&self, slaves: &[String]) -> Option<usize> {
        let a = self.active.as_deref()?;
        slaves.iter().position(|s| s == a)
    }
}

/// Where `cfg`'s state lives: beside its control socket.
pub fn path(cfg: &BondConfig) -> PathBuf {
    PathBuf::from(cfg.socket_path()).with_extension("state")
}

/// Reads the state; a missing or unreadable file is no state (a fresh start).
pub fn load(path: &Path) -> Option<RunState> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes the state atomically (a temporary file renamed over the old one).
pub fn save(path: &Path, st: &RunState) -> Result<()> {
    let tmp = path.with_extension("state.tmp");
    std::fs::write(&tmp, serde_json::to_vec(st)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_state_is_found_again() {
        let dir = std::env::temp_dir().join(format!("xbond-runstate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bond0.state");
        assert_eq!(load(&p), None);
        let mut st = RunState {
            active: Some("eth1".into()),
            ..RunState::default()
        };
        st.originals.insert(
            "eth0".into(),
            Original {
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
                offloads: vec![("rx-vlan-offload".into(), true)],
                ipv6_turned_off: true,
                mtu: Some(1500),
            },
        );
        save(&p, &st).unwrap();
        let back = load(&p).unwrap();
        assert_eq!(back, st);
        let slaves = ["eth0".to_string(), "eth1".to_string()];
        assert_eq!(back.active_index(&slaves), Some(1));
        assert_eq!(
            back.active_index(&slaves[..1]),
            None,
            "a slave no longer configured"
        );
        std::fs::write(&p, "garbage").unwrap();
        assert_eq!(load(&p), None, "a damaged file is a fresh start");
        std::fs::write(&p, r#"{"active":"eth0"}"#).unwrap();
        assert_eq!(
            load(&p).unwrap().active.as_deref(),
            Some("eth0"),
            "older files load"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
