//! hookgate's load, fault and backlog harness (BENCHMARKS.md): the modes,
//! the load they put on the gateway, the sink that receives and checks
//! every delivery, and building the release gateway they measure.

pub mod gateway;
pub mod load;
pub mod modes;
pub mod sink;
