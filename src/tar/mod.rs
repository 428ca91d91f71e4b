//! Images from scratch (and, in sibling modules, from archives).

pub mod mkfs;
