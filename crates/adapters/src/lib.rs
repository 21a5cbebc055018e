pub mod memory;
pub mod redis;
pub mod sqlite;
