//! Making a VM root image ready: [`check`] reads an image against the
//! requirements of a cluster that boots users' own ext3 root file systems
//! under Xen (sshd, accounts, network, consoles, shadow passwords, the Xen
//! loader configuration) and says how to fix what fails.
//!
//! Everything here works through the [`Filesystem`](crate::Filesystem) API
//! and reads the image's own configuration files; nothing of the host is
//! consulted.

pub mod aucd;
pub mod check;
pub mod label;
pub mod plan;
pub mod steps;
pub mod text;
