//! State kept across restarts of one bond's daemon, beside its control socket
//! (`/run/xbond/<bond>.state`, which the systemd unit preserves across
//! restarts): the active slave, so that a restart causes no failover.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use xbond_core::config::BondConfig;

/// What a restart resumes from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// The active slave's name, in modes that have one.
    pub active: Option<String>,
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
pub fn save(path: &Path, active: Option<&str>) -> Result<()> {
    let st = RunState {
        active: active.map(str::to_string),
    };
    let tmp = path.with_extension("state.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&st)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_active_slave_is_found_again() {
        let dir = std::env::temp_dir().join(format!("xbond-runstate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bond0.state");
        assert_eq!(load(&p), None);
        save(&p, Some("eth1")).unwrap();
        let st = load(&p).unwrap();
        let slaves = ["eth0".to_string(), "eth1".to_string()];
        assert_eq!(st.active_index(&slaves), Some(1));
        assert_eq!(
            st.active_index(&slaves[..1]),
            None,
            "a slave no longer configured"
        );
        std::fs::write(&p, "garbage").unwrap();
        assert_eq!(load(&p), None, "a damaged file is a fresh start");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
