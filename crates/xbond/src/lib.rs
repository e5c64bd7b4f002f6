//! The xbond daemon and CLI as a library: the control socket, the daemon's
//! control loop, the traffic generator, the lab topologies and the demo. The
//! binary (`xbond`) is a thin command-line layer over these.

pub mod control;
pub mod daemon;
pub mod demo;
pub mod failover;
pub mod filters;
pub mod ifupdown;
pub mod install;
pub mod lab;
pub mod offload;
pub mod pktgen;
pub mod runstate;
pub mod upper;
