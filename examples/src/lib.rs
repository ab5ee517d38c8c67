//! Small helpers shared by the example binaries (`hbonecat`, `gateway`, and later `waypoint`,
//! `ztunnel`). The binaries themselves live in `src/bin/` and stay thin: they compose the library
//! crates and parse their command lines.

pub mod echo;
pub mod json_lines;
pub mod routes;
pub mod shutdown;
