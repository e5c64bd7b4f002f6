//! xbond as a library: the [`runtime::Runtime`] that runs a bond (host
//! set-up, data plane, control loop, events), the control socket, host
//! integration (ifupdown, systemd, the upper port), the traffic generator,
//! the lab topologies and the demo. The binary (`xbond`) is a thin
//! command-line layer over these.

#![deny(missing_docs)]
pub mod control;
pub mod ctl;
pub mod demo;
pub mod doctor;
pub mod failover;
pub mod filters;
pub mod ifupdown;
pub mod install;
pub mod lab;
pub mod live_failover;
pub mod metrics;
pub mod offload;
pub mod pktgen;
pub mod runstate;
pub mod runtime;
pub mod upper;
