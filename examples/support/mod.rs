//! Servers shared by the examples and the demo's browser test: the example
//! login page and the demo web chat with its scripted bot.
#![allow(dead_code)]
pub mod demo;
pub mod login;
