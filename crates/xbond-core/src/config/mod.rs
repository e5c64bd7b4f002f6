//! The bond configuration: one flat TOML file per bond, keys spelled as the
//! kernel's bonding options, plus xbond's own keys (`name`, `slaves`, `queues`,
//! ...). Validation names the key, the value and what would be valid. Kernel
//! option strings and ifupdown `bond-*` stanzas import into the same model.
//!
//! - [`BondConfig::from_toml_str`] parses and validates a bond's TOML file.
//! - [`BondConfig::validate`] checks a configuration built by hand.
//! - [`BondConfig::to_toml`] writes the file back (keys that differ from the
//!   defaults); [`BondConfig::to_toml_with_defaults`] writes every key.
//! - [`import_option_string`] reads `mode=active-backup,miimon=100,primary=eno1`
//!   (NetworkManager `bond.options`, modprobe lines, `BONDING_OPTS`).
//! - [`import_ifupdown`] / [`import_ifupdown_named`] read an
//!   `/etc/network/interfaces` text (Debian, Proxmox VE).
//! - [`Import::to_toml`] writes an import back as a TOML file.
//!
//! Where xbond departs from the kernel, the difference is deliberate and is
//! named in the error or warning: link monitoring is on by default
//! (`miimon = 100`), delays that are not multiples of `miimon` are rejected
//! instead of rounded down, and options that do nothing in the chosen mode are
//! errors instead of being silently ignored.
//!
//! The code: `model` (the struct and its defaults), `validate` (the rules),
//! `toml` (the file, read and written from one list of keys), `error`
//! ([`ConfigError`] and what is valid for each key), `suggest` ("did you
//! mean"), `import` (option strings) and `ifupdown` (stanzas).

mod error;
mod ifupdown;
mod import;
mod model;
mod suggest;
mod toml;
mod validate;

#[cfg(test)]
mod tests;

pub use error::ConfigError;
pub use ifupdown::{import_ifupdown, import_ifupdown_named};
pub use import::{import_option_string, with_kernel_options, Import, KERNEL_KEYS};
pub use model::{AdSelect, ArpAllTargets, ArpValidate, BondConfig, LacpRate, Queues};
pub use toml::KEYS;

/// Default `miimon` in ms. The kernel leaves it at 0 (no failover at all) in
/// most modes; xbond monitors links unless told otherwise.
pub const DEFAULT_MIIMON_MS: u32 = 100;

/// Most queues (worker threads) one bond may have.
pub const MAX_QUEUES: u32 = 64;

/// Most `arp_ip_target` and, separately, most `ns_ip6_target` entries (the
/// kernel's `BOND_MAX_ARP_TARGETS`).
pub const MAX_TARGETS: usize = 16;

/// Longest interface name in bytes (`IFNAMSIZ - 1`).
pub const MAX_IFNAME_LEN: usize = 15;

/// Directory of the daemons' control sockets when `control_socket` is unset.
pub const SOCKET_DIR: &str = "/run/xbond";
