//! Empty library target: lets keepalive-user declare a build-dependency on
//! this crate so cargo rebuilds the eBPF object when it changes.
#![no_std]
