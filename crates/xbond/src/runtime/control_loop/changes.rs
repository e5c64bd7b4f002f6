//! Changes asked over the control socket (`xbond ctl`): the active slave
//! and the options a running bond takes, each logged.

use std::time::Instant;

use serde_json::{json, Value};
use tracing::{info, warn};
use xbond_core::bond::key_values;
use xbond_core::config::with_kernel_options;
use xbond_core::request::Request as Asked;

use super::Controller;
use crate::control::Request;

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
