//! `xbond ctl BOND ...`: live changes to a running bond over its control
//! socket, and `--save`, which writes an option change back to the bond's
//! config file, keeping the file's comments and layout (toml_edit).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// What `xbond ctl` did: the daemon's answer, and the file written.
#[derive(Debug)]
pub struct Done {
    /// The daemon's answer.
    pub answer: Value,
    /// The config file the change was saved to, with `--save`.
    pub saved: Option<String>,
}

/// Sends `words` (e.g. `["set", "miimon", "200"]`) to the daemon behind
/// `socket`; with `save`, writes the changed options to its config file.
pub fn run(socket: &str, words: &[String], save: bool) -> Result<Done> {
    let line = words.join(" ");
    if save && words.first().is_some_and(|w| w == "active-slave") {
        bail!("--save: the active slave is run-time state, not in the config (set primary to prefer a slave)");
    }
    let answer = crate::control::request(socket, &line)?;
    let saved = if save {
        let Some(changes) = answer.get("toml").and_then(Value::as_object) else {
            bail!("--save: only `set` changes the config file; {line:?} is run-time state");
        };
        let Some(path) = answer.get("config").and_then(Value::as_str) else {
            bail!("--save: the daemon was not started from a config file");
        };
        let pairs: Vec<(String, String)> = changes
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        save_keys(Path::new(path), &pairs)?;
        Some(path.to_string())
    } else {
        None
    };
    Ok(Done { answer, saved })
}

/// Sets each `key = value` (a TOML value as the config writes it) at the top
/// level of the TOML file at `path`, keeping everything else; written to a
/// temporary file and renamed over the old one.
pub fn save_keys(path: &Path, pairs: &[(String, String)]) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    for (key, value) in pairs {
        let v: toml_edit::Value = value
            .parse()
            .with_context(|| format!("{key} = {value}: not a TOML value"))?;
        match doc.get_mut(key) {
            Some(item) if item.is_value() => {
                // Keep the comment and spacing around the old value.
                let decor = item.as_value().map(|o| o.decor().clone());
                let mut v = v;
                if let Some(d) = decor {
                    *v.decor_mut() = d;
                }
                *item = toml_edit::Item::Value(v);
            }
            _ => {
                doc.insert(key, toml_edit::Item::Value(v));
            }
        }
    }
    // The result must still be a config xbond reads.
    xbond_core::config::BondConfig::from_toml_str(&doc.to_string())
        .map_err(|e| anyhow::anyhow!("{}: the saved file would not load: {e}", path.display()))?;
    let tmp = path.with_extension("toml.xbond-tmp");
    std::fs::write(&tmp, doc.to_string()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming over {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_keeps_comments_and_replaces_or_adds_keys() {
        let dir = std::env::temp_dir().join(format!("xbond-ctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bond0.toml");
        std::fs::write(
            &f,
            "# the uplink bond\nname = \"bond0\"\nslaves = [\"eno1\", \"eno2\"]\nmode = \"active-backup\"\nmiimon = 100 # ms\n",
        )
        .unwrap();
        save_keys(
            &f,
            &[
                ("miimon".into(), "200".into()),
                ("arp_ip_target".into(), "[\"10.0.0.1\"]".into()),
                ("arp_interval".into(), "1000".into()),
                ("miimon".into(), "0".into()),
            ],
        )
        .unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.starts_with("# the uplink bond\n"), "{text}");
        assert!(text.contains("miimon = 0 # ms"), "{text}");
        assert!(text.contains("arp_interval = 1000"), "{text}");
        assert!(text.contains("arp_ip_target = [\"10.0.0.1\"]"), "{text}");
        assert!(save_keys(&f, &[("miimon".into(), "\"fast\"".into())])
            .unwrap_err()
            .to_string()
            .contains("would not load"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
