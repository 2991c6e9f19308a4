//! Use cases. (Implementation pending.)
