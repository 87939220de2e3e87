//! Network namespaces that stand in for separate hosts (issue 18, docs/multihost.md).
//!
//! A [`Lab`] is a star of namespaces: one per role (`hostlab-<pid>-<lab>-<role>`,
//! e.g. the load generator, a front, the actor service) and a hub
//! (`hostlab-<pid>-<lab>-hub`) that routes between them. Each role has one
//! veth pair to the hub: `eth0` on the role's side with `10.213.<i>.2/24`,
//! `to-<role>` on the hub's side with `10.213.<i>.1/24` (i = 1, 2, ...), and
//! a route to `10.213.0.0/16` through the hub, which forwards (its own
//! `ip_forward`; no bridge module needed). Addresses only exist inside these
//! namespaces, so they cannot clash with the host's.
//!
//! Everything is done with `ip` (iproute2), always with `-n NAMESPACE`: the
//! veths are created inside the hub and the role namespaces, never in the
//! host's, and no host interface, route or firewall rule is touched.
//! Dropping the [`Lab`] kills what still runs in its namespaces and deletes
//! them (the veths go with them); [`sweep_stale`] removes the namespaces of
//! hostlab processes that died without cleaning up (SIGKILL), and
//! [`remove_own`] those of this process (the Ctrl-C path).
//!
//! Without root or without `ip netns`, [`unavailable`] says why, and callers
//! skip (never fail) what needs namespaces.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Every namespace hostlab creates starts with this.
pub const PREFIX: &str = "hostlab-";
/// The addresses inside a lab's namespaces.
pub const SUBNET: &str = "10.213.0.0/16";
/// Where `ip netns` keeps its namespaces (one bind-mounted file each).
const NETNS_DIR: &str = "/run/netns";
/// Names the `ip` program to use instead of the one on PATH (tests point
/// it at a missing file to see the skip path on a machine that has `ip`).
pub const IP_ENV: &str = "HOSTLAB_IP";

/// The `ip` program: `$HOSTLAB_IP`, or `ip` from PATH.
fn ip_program() -> std::ffi::OsString {
    std::env::var_os(IP_ENV).unwrap_or_else(|| "ip".into())
}

/// Labs made by this process so far (part of each namespace's name).
static LABS: AtomicU32 = AtomicU32::new(0);

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// No root, no `ip`, or the kernel refuses namespaces: skip.
    #[error("network namespaces are unavailable: {0}")]
    Unavailable(String),
    /// A role name that cannot make a namespace or interface name.
    #[error("role `{0}`: use 1 to 12 characters a-z, 0-9, and not `hub`")]
    BadRole(String),
    /// An `ip` command failed.
    #[error("`ip {args}` failed: {stderr}")]
    Ip { args: String, stderr: String },
}

/// Why namespaces cannot be used here, or `None` if they can (`ip`
/// present, and a probe namespace could be made and removed, which needs root).
pub fn unavailable() -> Option<String> {
    let program = ip_program();
    match Command::new(&program).arg("-V").output() {
        Ok(o) if o.status.success() => {}
        Ok(_) | Err(_) => {
            return Some(format!(
                "`{}` (iproute2) was not found or does not run",
                program.to_string_lossy()
            ));
        }
    }
    let probe = format!(
        "{PREFIX}{}-{}-probe",
        std::process::id(),
        LABS.fetch_add(1, Ordering::Relaxed)
    );
    if let Err(e) = ip(&["netns", "add", &probe]) {
        return Some(format!("cannot create a network namespace (it needs root): {e}"));
    }
    if let Err(e) = ip(&["netns", "del", &probe]) {
        return Some(e.to_string());
    }
    None
}

/// Runs `ip ARGS`; an error carries its stderr.
fn ip(args: &[&str]) -> Result<String, NetnsError> {
    let out = Command::new(ip_program())
        .args(args)
        .output()
        .map_err(|e| NetnsError::Ip {
            args: args.join(" "),
            stderr: e.to_string(),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetnsError::Ip {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// One role's namespace in a [`Lab`].
#[derive(Debug, Clone)]
pub struct Host {
    pub role: String,
    /// The namespace's name (`ip netns exec NAME ...` enters it by hand).
    pub netns: String,
    /// The role's address, reachable from every other role of the lab.
    pub addr: Ipv4Addr,
    /// The hub's end of the role's veth (set down to cut the role's link).
    hub_veth: String,
}

/// A set of namespaces joined by veths through a hub; removed on drop.
#[derive(Debug)]
pub struct Lab {
    hub: String,
    hosts: Vec<Host>,
    /// Namespaces made so far, in order (removed in reverse).
    made: Vec<String>,
}

impl Lab {
    /// One namespace per role (role names: 1 to 12 of a-z, 0-9), joined by
    /// veths through a hub. Sweeps stale namespaces of dead hostlab
    /// processes first. On an error, whatever was made is removed again.
    pub fn create(roles: &[&str]) -> Result<Lab, NetnsError> {
        if let Some(reason) = unavailable() {
            return Err(NetnsError::Unavailable(reason));
        }
        for (i, role) in roles.iter().enumerate() {
            let ok = (1..=12).contains(&role.len())
                && role.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && *role != "hub"
                && !roles[..i].contains(role);
            if !ok {
                return Err(NetnsError::BadRole((*role).to_owned()));
            }
        }
        sweep_stale();
        let base = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            LABS.fetch_add(1, Ordering::Relaxed)
        );
        let mut lab = Lab {
            hub: format!("{base}-hub"),
            hosts: Vec::new(),
            made: Vec::new(),
        };
        lab.add_netns(&lab.hub.clone())?;
        forward(&lab.hub)?;
        for (i, role) in roles.iter().enumerate() {
            let netns = format!("{base}-{role}");
            lab.add_netns(&netns)?;
            let net = i + 1;
            let hub_veth = format!("to-{role}");
            let (hub_addr, addr) = (
                Ipv4Addr::new(10, 213, net as u8, 1),
                Ipv4Addr::new(10, 213, net as u8, 2),
            );
            let hub = lab.hub.clone();
            ip(&[
                "-n", &hub, "link", "add", &hub_veth, "type", "veth", "peer", "name", "eth0", "netns", &netns,
            ])?;
            ip(&["-n", &hub, "addr", "add", &format!("{hub_addr}/24"), "dev", &hub_veth])?;
            ip(&["-n", &netns, "addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
            ip(&["-n", &hub, "link", "set", &hub_veth, "up"])?;
            ip(&["-n", &netns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &netns, "route", "add", SUBNET, "via", &hub_addr.to_string()])?;
            lab.hosts.push(Host {
                role: (*role).to_owned(),
                netns,
                addr,
                hub_veth,
            });
        }
        Ok(lab)
    }

    /// `ip netns add NAME` with its loopback up (servers' private
    /// listeners, e.g. a node server's, use 127.0.0.1 inside it).
    fn add_netns(&mut self, name: &str) -> Result<(), NetnsError> {
        ip(&["netns", "add", name])?;
        self.made.push(name.to_owned());
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(())
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The host of `role`.
    pub fn host(&self, role: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.role == role)
            .unwrap_or_else(|| panic!("no role `{role}` in this lab"))
    }

    /// Cut (`false`) or restore (`true`) `role`'s link: its veth's hub end
    /// down or up. The role keeps its address; packets to and from it stop.
    pub fn set_link(&self, role: &str, up: bool) -> Result<(), NetnsError> {
        let host = self.host(role);
        ip(&[
            "-n",
            &self.hub,
            "link",
            "set",
            &host.hub_veth,
            if up { "up" } else { "down" },
        ])?;
        Ok(())
    }

    /// The namespaces this lab made (and has not removed yet).
    pub fn namespaces(&self) -> &[String] {
        &self.made
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in self.made.drain(..).rev() {
            remove(&name);
        }
    }
}

impl Host {
    /// Make `command` run inside this host's namespace (a `setns` before
    /// exec, so the child's pid is the program's and whoever stops it today
    /// stops it the same way).
    pub fn enter(&self, command: &mut Command) -> std::io::Result<()> {
        let netns = File::open(Path::new(NETNS_DIR).join(&self.netns))?;
        // SAFETY: setns is async-signal-safe, and the file is opened before
        // the fork.
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(move || {
                nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
            });
        }
        Ok(())
    }

    /// Start `f` on a thread of its own inside this host's namespace (every
    /// socket `f` opens belongs to it) and return at once; the thread's
    /// result is `Err` when it could not enter the namespace.
    pub fn spawn_in<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::io::Result<std::thread::JoinHandle<std::io::Result<T>>> {
        let netns = File::open(Path::new(NETNS_DIR).join(&self.netns))?;
        std::thread::Builder::new()
            .name(format!("netns-{}", self.role))
            .spawn(move || {
                nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
                Ok(f())
            })
    }

    /// Run `f` on a thread of its own inside this host's namespace (every
    /// socket `f` opens belongs to it), and return its result.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
        let netns = File::open(Path::new(NETNS_DIR).join(&self.netns))?;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
                    Ok(f())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

/// Let the hub route between its veths (its own `ip_forward`, not the host's).
fn forward(hub: &str) -> Result<(), NetnsError> {
    let netns = File::open(Path::new(NETNS_DIR).join(hub)).map_err(|e| NetnsError::Ip {
        args: format!("netns {hub}"),
        stderr: e.to_string(),
    })?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || -> std::io::Result<()> {
                nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)?;
                // /proc/sys/net is the namespace of the thread that opens it.
                std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
    .map_err(|e| NetnsError::Ip {
        args: format!("netns {hub}: ip_forward"),
        stderr: e.to_string(),
    })
}

/// Kill what still runs in namespace `name` (only hostlab's own namespaces
/// get here) and delete it; its veths go with it.
fn remove(name: &str) {
    if let Ok(pids) = ip(&["netns", "pids", name]) {
        for pid in pids.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
    if let Err(e) = ip(&["netns", "del", name]) {
        eprintln!("hostlab: cannot remove network namespace {name}: {e}");
    }
}

/// hostlab's namespaces (names starting with [`PREFIX`]) and the pid in each name.
fn own_kind() -> Vec<(String, Option<u32>)> {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|name| {
            let rest = name.strip_prefix(PREFIX)?;
            let pid = rest.split('-').next().and_then(|p| p.parse().ok());
            Some((name, pid))
        })
        .collect()
}

/// The namespaces hostlab process `pid` made that still exist.
pub fn namespaces_of(pid: u32) -> Vec<String> {
    own_kind()
        .into_iter()
        .filter(|(_, p)| *p == Some(pid))
        .map(|(name, _)| name)
        .collect()
}

/// Removes the namespaces of hostlab processes that no longer exist
/// (SIGKILL left them no chance); returns their names.
pub fn sweep_stale() -> Vec<String> {
    let stale: Vec<String> = own_kind()
        .into_iter()
        .filter(|(_, pid)| pid.is_some_and(|p| !Path::new("/proc").join(p.to_string()).exists()))
        .map(|(name, _)| name)
        .collect();
    for name in &stale {
        remove(name);
    }
    stale
}

/// Removes every namespace this process made (Ctrl-C and SIGTERM of
/// `hostlab run`, where the labs' drops do not run).
pub fn remove_own() {
    for name in namespaces_of(std::process::id()) {
        remove(&name);
    }
}
