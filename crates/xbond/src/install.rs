//! `xbond install`: puts xbond where the host's service manager and
//! ifupdown find it: the binary (`/usr/local/sbin/xbond`), the systemd
//! template unit (`/etc/systemd/system/xbond@.service`), the ifupdown hooks
//! (`/etc/network/if-pre-up.d/xbond`, `if-post-down.d/xbond`), the ifupdown2
//! addon (with its `addons.conf` entry) and the config folder `/etc/xbond/`. The unit and hook texts are the files under
//! `contrib/`, with the binary's path filled in.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The systemd template unit, as shipped in `contrib/systemd/`.
pub const UNIT: &str = include_str!("../../../contrib/systemd/xbond@.service");

/// The ifupdown hook, as shipped in `contrib/ifupdown/` (`@XBOND@` is the
/// binary's path).
pub const HOOK: &str = include_str!("../../../contrib/ifupdown/xbond-hook");

/// The ifupdown2 addon, as shipped in `contrib/ifupdown2/` (`@XBOND@` is
/// the binary's path).
pub const IFUPDOWN2_ADDON: &str = include_str!("../../../contrib/ifupdown2/xbond.py");

/// The lines that make ifupdown2 run the addon, first in addons.conf.
pub const IFUPDOWN2_LINES: &[&str] = &["pre-up,xbond", "post-down,xbond"];

/// Where the unit and hooks expect the binary by default.
pub const DEFAULT_BIN: &str = "/usr/local/sbin/xbond";

/// What to install where.
#[derive(Debug, Clone)]
pub struct Install {
    /// Root of the installation (`/` on a host).
    pub root: PathBuf,
    /// The binary the unit and hooks run; `None`: this binary, copied to
    /// `ROOT/usr/local/sbin/xbond`.
    pub bin: Option<PathBuf>,
    /// ifupdown's folder (default `ROOT/etc/network`).
    pub ifupdown_dir: Option<PathBuf>,
    /// ifupdown2's addon folder (default `ROOT/usr/share/ifupdown2/addons`);
    /// the addon is installed where ifupdown2 is (this folder exists).
    pub ifupdown2_addons: Option<PathBuf>,
}

/// Puts `IFUPDOWN2_LINES` first in ifupdown2's addons.conf (once).
fn enable_ifupdown2_addon(conf: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(conf).with_context(|| format!("reading {}", conf.display()))?;
    let rest: Vec<&str> = text
        .lines()
        .filter(|l| !IFUPDOWN2_LINES.contains(&l.trim()))
        .collect();
    let mut out = IFUPDOWN2_LINES.join("\n");
    out.push('\n');
    for l in rest {
        out.push_str(l);
        out.push('\n');
    }
    write(conf, &out, 0o644)
}

fn under(root: &Path, abs: &str) -> PathBuf {
    root.join(abs.trim_start_matches('/'))
}

fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // A new file renamed into place: a running hook never sees half of it.
    let tmp = path.with_extension("xbond-new");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path).with_context(|| format!("installing {}", path.display()))
}

/// Installs; returns one line per file written.
pub fn install(i: &Install) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let bin = match &i.bin {
        Some(b) => b.clone(),
        None => {
            let exe = std::env::current_exe().context("finding the xbond binary")?;
            let dst = under(&i.root, DEFAULT_BIN);
            if let Some(dir) = dst.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = dst.with_extension("xbond-new");
            std::fs::copy(&exe, &tmp)
                .with_context(|| format!("copying {} to {}", exe.display(), tmp.display()))?;
            std::fs::rename(&tmp, &dst).with_context(|| format!("installing {}", dst.display()))?;
            done.push(format!("{} (the binary)", dst.display()));
            PathBuf::from(DEFAULT_BIN)
        }
    };
    let bin_s = bin.display().to_string();
    let unit = under(&i.root, "/etc/systemd/system/xbond@.service");
    write(&unit, &UNIT.replace(DEFAULT_BIN, &bin_s), 0o644)?;
    done.push(format!(
        "{} (systemctl enable --now xbond@bond0 runs /etc/xbond/bond0.toml)",
        unit.display()
    ));
    let net = i
        .ifupdown_dir
        .clone()
        .unwrap_or_else(|| under(&i.root, "/etc/network"));
    let hook = HOOK.replace("@XBOND@", &bin_s);
    for phase in ["if-pre-up.d", "if-post-down.d"] {
        let p = net.join(phase).join("xbond");
        write(&p, &hook, 0o755)?;
        done.push(format!(
            "{} (ifupdown: stanzas with `bond-driver xbond`)",
            p.display()
        ));
    }
    let addons = i
        .ifupdown2_addons
        .clone()
        .unwrap_or_else(|| under(&i.root, "/usr/share/ifupdown2/addons"));
    let conf = net.join("ifupdown2/addons.conf");
    if addons.is_dir() && conf.is_file() {
        let p = addons.join("xbond.py");
        write(&p, &IFUPDOWN2_ADDON.replace("@XBOND@", &bin_s), 0o644)?;
        enable_ifupdown2_addon(&conf)?;
        done.push(format!(
            "{} and {} (ifupdown2: stanzas with `bond-driver xbond`)",
            p.display(),
            conf.display()
        ));
    }
    let etc = under(&i.root, "/etc/xbond");
    std::fs::create_dir_all(&etc).with_context(|| format!("creating {}", etc.display()))?;
    done.push(format!("{} (bond configs: <name>.toml)", etc.display()));
    Ok(done)
}
