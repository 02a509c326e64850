//! An LD_PRELOAD shim that makes `setsockopt(TCP_KEEPCNT)` fail, as a
//! security module or a cgroup/setsockopt program could; built with `cc`,
//! its directory removed on drop.

use std::{path::PathBuf, process::Command};

use crate::{NetNs, keepalive_bin, run::finish, unique_name};

const SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
static int port_of(int fd, int peer) {
    struct sockaddr_storage ss; socklen_t len = sizeof ss;
    if ((peer ? getpeername : getsockname)(fd, (struct sockaddr *)&ss, &len)) return -1;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}
int setsockopt(int fd, int level, int name, const void *val, socklen_t len) {
    static int (*real)(int, int, int, const void *, socklen_t);
    if (!real) real = dlsym(RTLD_NEXT, "setsockopt");
    const char *fail = getenv("KA_FAIL_PORT");
    if (fail && level == IPPROTO_TCP && name == TCP_KEEPCNT) {
        int port = atoi(fail);
        if (port_of(fd, 0) == port || port_of(fd, 1) == port) { errno = EPERM; return -1; }
    }
    return real(fd, level, name, val, len);
}
"#;

/// The built shim: `setsockopt(TCP_KEEPCNT)` fails with EPERM on sockets
/// whose local or remote port is `$KA_FAIL_PORT`.
#[derive(Debug)]
pub struct FailingKeepcnt {
    dir: PathBuf,
    shim: PathBuf,
}

impl FailingKeepcnt {
    /// Builds the shim in a temporary directory; `None` without a C compiler.
    pub fn build() -> Option<Self> {
        let dir = std::env::temp_dir().join(unique_name("ka-shim"));
        std::fs::create_dir_all(&dir).ok()?;
        let (source, shim) = (dir.join("shim.c"), dir.join("shim.so"));
        // Constructed before building, so the directory goes whatever happens.
        let built = Self { dir, shim };
        std::fs::write(&source, SHIM).ok()?;
        let status = Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&built.shim)
            .arg(&source)
            .arg("-ldl")
            .status();
        status.is_ok_and(|s| s.success()).then_some(built)
    }

    /// Runs `keepalive ARGS` inside `ns` with the shim preloaded, failing
    /// on `port`: (exit code, stdout, stderr), as `run_keepalive` does.
    pub fn run_keepalive_in(
        &self,
        ns: &NetNs,
        port: u16,
        args: &[&str],
    ) -> (Option<i32>, String, String) {
        let mut cmd = ns.command(keepalive_bin());
        cmd.env("LD_PRELOAD", &self.shim)
            .env("KA_FAIL_PORT", port.to_string());
        finish(cmd, args)
    }
}

impl Drop for FailingKeepcnt {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
