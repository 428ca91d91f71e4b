//! Tar archives and images: [`import`] (a tar stream into an existing
//! image), [`export`] (a tree back as a PAX tar); [`read`] parses tar
//! streams, [`write`] writes PAX headers, [`acl`] converts POSIX ACLs.

pub mod acl;
pub mod export;
pub mod import;
pub mod read;
pub mod write;
