//! The contract with the kernel, hook by hook: which program attaches
//! where, whether the tool can work without it, and what the user loses
//! when this kernel lacks it. The loader and doctor both read this table.

use aya::programs::CgroupSkbAttachType;
use serde::Serialize;

#[derive(Debug, Clone, Copy)]
pub enum Attach {
    CgroupSkb(CgroupSkbAttachType),
    TracePoint(&'static str, &'static str),
    RawTracePoint(&'static str),
    SockOps,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Packets,
    Tracepoints,
    /// Connections closing: what lets every mode forget them.
    Closes,
    SockOps,
}

pub struct Hook {
    pub program: &'static str,
    pub attach: Attach,
    pub group: Group,
    /// Without it the tool cannot do its main job.
    pub required: bool,
    pub without_it: &'static str,
}

pub const HOOKS: &[Hook] = &[
    Hook {
        program: "keepalive_probe_egress",
        attach: Attach::CgroupSkb(CgroupSkbAttachType::Egress),
        group: Group::Packets,
        required: true,
        without_it: "no probes are seen",
    },
    Hook {
        program: "keepalive_answer_ingress",
        attach: Attach::CgroupSkb(CgroupSkbAttachType::Ingress),
        group: Group::Packets,
        required: true,
        without_it: "answers and round trips are not seen",
    },
    Hook {
        program: "tcp_send_reset",
        attach: Attach::TracePoint("tcp", "tcp_send_reset"),
        group: Group::Tracepoints,
        required: false,
        without_it: "keepalive kills inferred from the socket error (ETIMEDOUT)",
    },
    Hook {
        program: "inet_sk_error_report",
        attach: Attach::RawTracePoint("inet_sk_error_report"),
        group: Group::Tracepoints,
        required: true,
        without_it: "timeouts and their errors are not seen",
    },
    Hook {
        program: "tcp_receive_reset",
        attach: Attach::TracePoint("tcp", "tcp_receive_reset"),
        group: Group::Tracepoints,
        required: false,
        without_it: "resets from the peer are not seen",
    },
    Hook {
        program: "inet_sock_set_state",
        attach: Attach::TracePoint("sock", "inet_sock_set_state"),
        group: Group::Closes,
        required: false,
        without_it: "connections closing are not seen; timelines end only on timeouts",
    },
    Hook {
        program: "keepalive_sockops",
        attach: Attach::SockOps,
        group: Group::SockOps,
        required: false,
        without_it: "settings of new connections unseen at connect; --new/--apply policies unavailable",
    },
];

/// Which groups of programs to attach.
#[derive(Debug, Clone, Copy)]
pub struct HookSet {
    pub packets: bool,
    pub tracepoints: bool,
    pub closes: bool,
    pub sockops: bool,
}

impl HookSet {
    pub const ALL: Self = Self {
        packets: true,
        tracepoints: true,
        closes: true,
        sockops: true,
    };

    pub fn includes(&self, group: Group) -> bool {
        match group {
            Group::Packets => self.packets,
            Group::Tracepoints => self.tracepoints,
            Group::Closes => self.closes,
            Group::SockOps => self.sockops,
        }
    }
}

/// One line of the start-up/doctor report.
#[derive(Debug, Clone, Serialize)]
pub struct HookStatus {
    pub hook: String,
    pub ok: bool,
    pub required: bool,
    pub detail: String,
    pub without_it: String,
}

pub fn hook_name(hook: &Hook) -> String {
    match hook.attach {
        Attach::CgroupSkb(CgroupSkbAttachType::Egress) => "cgroup_skb/egress".into(),
        Attach::CgroupSkb(CgroupSkbAttachType::Ingress) => "cgroup_skb/ingress".into(),
        Attach::TracePoint(category, name) => format!("tracepoint {category}:{name}"),
        Attach::RawTracePoint(name) => format!("raw_tp {name}"),
        Attach::SockOps => "sock_ops".into(),
    }
}
