//! Roles on separate hosts, emulated with network namespaces (`hostlab::netns`):
//! the generator, a split front and the actor service each in a namespace of
//! its own, joined by veths. Needs root and `ip netns`; where they are
//! missing every test prints a SKIP line and returns (CI runs as root).

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{hostlab, process_alive};
use hostlab::netns::{Host, Lab, NetnsError};
use hostlab::ready::{self, READY_TIMEOUT, Running};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

/// Whether this test runs as root (`/proc/self` belongs to the effective user).
fn root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Why to skip: namespaces unavailable, and not root (as root, with `ip`
/// present, namespaces must work: a failure there fails the test rather
/// than passing it silently).
fn skip(test: &str, reason: String) {
    let has_ip = Command::new("ip").arg("-V").output().is_ok_and(|o| o.status.success());
    assert!(
        !(root() && has_ip),
        "running as root with `ip`, yet namespaces are unavailable: {reason}"
    );
    println!("SKIP multihost::{test}: {reason}");
}

/// A lab with these roles, or `None` (after a SKIP line) where namespaces
/// are unavailable. Any other error fails the test.
fn lab(test: &str, roles: &[&str]) -> Option<Lab> {
    match Lab::create(roles) {
        Ok(lab) => Some(lab),
        Err(NetnsError::Unavailable(reason)) => {
            skip(test, reason);
            None
        }
        Err(e) => panic!("cannot build the namespaces: {e}"),
    }
}

/// `hostlab serve MODEL ARGS` inside `host`'s namespace; its child and the
/// address of its ready line (which must name `host`'s address).
fn serve_in(host: &Host, model: &str, args: &[&str]) -> (Running, SocketAddr) {
    let mut command = hostlab();
    host.enter(&mut command).expect("enter the namespace");
    command
        .args(["serve", model, "--listen", &format!("{}:0", host.addr)])
        .args(args)
        .env("RUST_LOG", "warn,ractor_cluster=error");
    let (child, line) = ready::spawn_ready(&mut command, READY_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let url = line
        .split(' ')
        .find_map(|f| f.strip_prefix("url=http://"))
        .unwrap_or_else(|| panic!("ready line without url: {line}"));
    let addr: SocketAddr = url.parse().unwrap_or_else(|e| panic!("ready line url {url}: {e}"));
    assert_eq!(
        addr.ip(),
        std::net::IpAddr::V4(host.addr),
        "the ready line shows the address given: {line}"
    );
    assert!(line.contains(&format!("model={model} ")), "{line}");
    (child, addr)
}

/// One HTTP request sent from inside `from`'s namespace: status, JSON body
/// (Null if none) and how long the answer took. Errors (no answer within
/// 15 s, connection refused) are a status of 0.
fn request(from: &Host, method: &str, url: &str, body: Option<Value>) -> (u16, Value, Duration) {
    request_with(from, method, url, body, &[])
}

/// [`request`] with extra headers.
fn request_with(
    from: &Host,
    method: &str,
    url: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, Value, Duration) {
    from.run_in(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap();
            let mut req = client.request(method.parse().unwrap(), url);
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            if let Some(body) = body {
                req = req.json(&body);
            }
            let started = Instant::now();
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = resp.json().await.unwrap_or(Value::Null);
                    (status, body, started.elapsed())
                }
                Err(_) => (0, Value::Null, started.elapsed()),
            }
        })
    })
    .expect("enter the generator's namespace")
}

/// Poll `f` every 100 ms until it is true; false if `limit` passes first.
fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// SIGTERM and a clean exit within 20 s.
fn stop(child: Running, what: &str) {
    let out = child
        .stop_with(Signal::SIGTERM, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} exited with {} after SIGTERM: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn exists(netns: &str) -> bool {
    std::path::Path::new("/run/netns").join(netns).exists()
}

#[test]
fn a_front_reaches_the_actor_service_in_another_namespace_and_survives_a_link_cut() {
    let Some(lab) = lab("link_cut", &["gen", "front", "actors"]) else {
        return;
    };
    let (generator, front_host, actors_host) = (lab.host("gen"), lab.host("front"), lab.host("actors"));
    let (actors, service) = serve_in(actors_host, "actors", &[]);
    let (front, front_addr) = serve_in(
        front_host,
        "front",
        &["--actors", &service.to_string(), "--upstream-timeout", "1s"],
    );
    let base = format!("http://{front_addr}");

    // The front, the service and the generator are on three hosts.
    let (status, book, _) = request(
        generator,
        "POST",
        &format!("{base}/books"),
        Some(json!({"title": "Far", "author": "Away"})),
    );
    assert_eq!(status, 201, "{book}");
    let book_url = format!("{base}/books/{}", book["id"]);
    let (status, got, _) = request(generator, "GET", &book_url, None);
    assert_eq!((status, &got["title"]), (200, &json!("Far")), "{got}");

    // Cut the service's link: the front notices the dead session and answers
    // 503 backend_unavailable at once (not after a timeout per request).
    lab.set_link("actors", false).unwrap();
    let mut last = (0, Value::Null, Duration::ZERO);
    let fast_503 = wait_for(Duration::from_secs(40), || {
        last = request(generator, "GET", &book_url, None);
        last.0 == 503 && last.1["error"]["code"] == "backend_unavailable" && last.2 < Duration::from_millis(500)
    });
    assert!(
        fast_503,
        "no fast 503 backend_unavailable after the link cut; last answer: {last:?}"
    );

    // Restore it: the front reconnects, and the state was never lost.
    lab.set_link("actors", true).unwrap();
    let back = wait_for(Duration::from_secs(40), || {
        last = request(generator, "GET", &book_url, None);
        last.0 == 200
    });
    assert!(
        back,
        "the front did not reconnect after the link came back; last answer: {last:?}"
    );
    assert_eq!(last.1["title"], "Far", "{:?}", last.1);

    let pids = [front.pid(), actors.pid()];
    stop(front, "the front");
    stop(actors, "the actor service");
    let names = lab.namespaces().to_vec();
    drop(lab);
    for name in &names {
        assert!(!exists(name), "namespace {name} left behind");
    }
    for pid in pids {
        assert!(!process_alive(pid), "process {pid} left behind");
    }
}

#[test]
fn dropping_a_lab_stops_what_runs_in_it_and_removes_every_namespace() {
    let Some(lab) = lab("drop", &["actors"]) else {
        return;
    };
    let (actors, _) = serve_in(lab.host("actors"), "actors", &[]);
    let pid = actors.pid();
    let names = lab.namespaces().to_vec();
    assert_eq!(names.len(), 2, "the role and the hub: {names:?}");
    // The veth's hub end exists inside the hub, not on the host.
    let hub = names.iter().find(|n| n.ends_with("-hub")).unwrap();
    let links = Command::new("ip").args(["-n", hub, "-o", "link"]).output().unwrap();
    assert!(String::from_utf8_lossy(&links.stdout).contains("to-actors@"));
    let host_links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&host_links.stdout).contains("to-actors"));

    drop(lab);
    assert!(
        wait_for(Duration::from_secs(10), || !process_alive(pid)),
        "the server in a dropped lab is still running"
    );
    drop(actors);
    for name in &names {
        assert!(!exists(name), "namespace {name} left behind");
    }
}

#[test]
fn namespaces_of_dead_hostlab_processes_are_swept() {
    if let Some(reason) = hostlab::netns::unavailable() {
        skip("sweep", reason);
        return;
    }
    // A pid that existed and is gone: a child that has exited and been reaped.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    assert!(!process_alive(dead));
    let stale = format!("hostlab-{dead}-0-gen");
    let ours = format!("hostlab-{}-999-gen", std::process::id());
    for name in [&stale, &ours] {
        let out = Command::new("ip").args(["netns", "add", name]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let swept = hostlab::netns::sweep_stale();
    assert!(swept.contains(&stale), "{swept:?}");
    assert!(!exists(&stale), "the stale namespace is gone");
    assert!(exists(&ours), "a live process's namespace is kept");
    // Not remove_own(): the other tests of this binary (same pid) have labs.
    Command::new("ip").args(["netns", "del", &ours]).status().unwrap();
}

#[test]
fn every_server_binds_the_address_given_and_hostlab_load_reaches_it_from_another_host() {
    let Some(lab) = lab("listen", &["gen", "server"]) else {
        return;
    };
    let (generator, server) = (lab.host("gen"), lab.host("server"));
    let dir = tempfile::tempdir().unwrap();
    for model in ["baseline", "edge", "edge-actix", "proxy", "inprocess", "split"] {
        let (child, addr) = serve_in(server, model, &["--start-mode", "always-running"]);
        let (status, body, _) = request(generator, "GET", &format!("http://{addr}/ping"), None);
        assert_eq!(status, 200, "{model}: {body}");
        // `hostlab load` from the generator's host to the server's address.
        let json = dir.path().join(format!("{model}.json"));
        let mut load = hostlab();
        generator.enter(&mut load).unwrap();
        load.args(["load", &format!("http://{addr}/ping"), "-n", "200", "-c", "4", "--json"])
            .arg(&json);
        let out = common::output(&mut load);
        assert!(
            out.status.success(),
            "{model}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(report["requests"]["ok"], 200, "{model}: {report}");
        stop(child, model);
    }
}

#[test]
fn two_fronts_on_two_hosts_share_one_actor_service_through_restarts_of_either() {
    let Some(lab) = lab("two_fronts", &["gen", "front1", "front2", "actors"]) else {
        return;
    };
    let generator = lab.host("gen");
    let (actors, service) = serve_in(lab.host("actors"), "actors", &[]);
    let service = service.to_string();
    let front_args = ["--actors", service.as_str()];
    let (front1, addr1) = serve_in(lab.host("front1"), "front", &front_args);
    let (front2, addr2) = serve_in(lab.host("front2"), "front", &front_args);
    let url = |addr: SocketAddr, path: &str| format!("http://{addr}{path}");
    let book = json!({"title": "Solaris", "author": "Stanisław Lem"});
    let key = [("Idempotency-Key", "order-7")];

    let (status, first, _) = request_with(generator, "POST", &url(addr1, "/books"), Some(book.clone()), &key);
    assert_eq!(status, 201, "{first}");
    let task = json!({"id": "mh-1", "kind": "ledger", "rows": [
        {"account": "4000-100", "debit_cents": 500, "credit_cents": 0},
        {"account": "1000-200", "debit_cents": 0, "credit_cents": 500},
    ]});
    let (status, accepted, _) = request_with(
        generator,
        "POST",
        &url(addr2, "/tasks"),
        Some(task),
        &[("Prefer", "respond-async")],
    );
    assert_eq!(status, 202, "{accepted}");

    // Restart front 1 (a recycle on its own host): the state is in the service.
    stop(front1, "front 1");
    let (front1, addr1) = serve_in(lab.host("front1"), "front", &front_args);
    for addr in [addr1, addr2] {
        let (status, retry, _) = request_with(generator, "POST", &url(addr, "/books"), Some(book.clone()), &key);
        assert_eq!((status, &retry), (200, &first), "an idempotent retry through {addr}");
    }
    let mut task_status = Value::Null;
    let done = wait_for(Duration::from_secs(30), || {
        let (status, record, _) = request(generator, "GET", &url(addr1, "/tasks/mh-1"), None);
        task_status = record["status"].clone();
        status == 200 && task_status == "done"
    });
    assert!(
        done,
        "task mh-1 accepted through front 2 is done, seen through front 1: {task_status}"
    );

    // Crash front 2: front 1 goes on serving the same state.
    let pid2 = front2.pid();
    drop(front2.stop_with(Signal::SIGKILL, Duration::from_secs(20)).unwrap());
    assert!(!process_alive(pid2));
    let (status, books, _) = request(generator, "GET", &url(addr1, "/books"), None);
    assert_eq!(status, 200, "{books}");
    assert_eq!(books.as_array().map(Vec::len), Some(1), "one book, not two: {books}");
    let (front2, addr2) = serve_in(lab.host("front2"), "front", &front_args);
    let (status, record, _) = request(generator, "GET", &url(addr2, "/tasks/mh-1"), None);
    assert_eq!((status, &record["status"]), (200, &json!("done")), "{record}");

    stop(front1, "front 1");
    stop(front2, "front 2");
    stop(actors, "the actor service");
    let names = lab.namespaces().to_vec();
    drop(lab);
    assert!(names.iter().all(|n| !exists(n)), "namespaces left behind: {names:?}");
}

#[test]
fn a_killed_actor_node_on_its_own_host_takes_only_its_shard_down() {
    use hostlab_workloads::hashing::shard_of_book;
    let Some(lab) = lab("shard_kill", &["gen", "front", "node0", "node1"]) else {
        return;
    };
    let generator = lab.host("gen");
    let (node0, a0) = serve_in(lab.host("node0"), "actors", &["--shard", "0/2"]);
    let (node1, a1) = serve_in(lab.host("node1"), "actors", &["--shard", "1/2"]);
    let (front, addr) = serve_in(lab.host("front"), "front", &["--actors", &format!("{a0},{a1}")]);
    let url = |path: &str| format!("http://{addr}{path}");

    let mut ids = Vec::new();
    for i in 0..10 {
        let book = json!({"title": format!("Book {i}"), "author": "A"});
        let (status, created, _) = request(generator, "POST", &url("/books"), Some(book));
        assert_eq!(status, 201, "{created}");
        ids.push(created["id"].as_u64().unwrap());
    }
    let on = |k: u32| ids.iter().copied().filter(move |&id| shard_of_book(id, 2) == k);
    assert!(on(0).count() > 0 && on(1).count() > 0, "books on both hosts: {ids:?}");
    let (status, stats, _) = request(generator, "GET", &url("/stats"), None);
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["shards"][1]["books"], on(1).count(), "{stats}");

    let pid1 = node1.pid();
    drop(node1.stop_with(Signal::SIGKILL, Duration::from_secs(20)).unwrap());
    let one = on(1).next().unwrap();
    let mut last = (0, Value::Null, Duration::ZERO);
    let fast_503 = wait_for(Duration::from_secs(20), || {
        last = request(generator, "GET", &url(&format!("/books/{one}")), None);
        last.0 == 503 && last.1["error"]["code"] == "backend_unavailable" && last.2 < Duration::from_millis(500)
    });
    assert!(fast_503, "shard 1 gave no fast 503 after its node was killed: {last:?}");
    for id in on(0) {
        let (status, body, _) = request(generator, "GET", &url(&format!("/books/{id}")), None);
        assert_eq!(status, 200, "shard 0 keeps answering: {body}");
    }

    stop(front, "the front");
    let pid0 = node0.pid();
    stop(node0, "actor node 0");
    let names = lab.namespaces().to_vec();
    drop(lab);
    assert!(names.iter().all(|n| !exists(n)), "namespaces left behind: {names:?}");
    assert!(
        !process_alive(pid0) && !process_alive(pid1),
        "an actor node was left behind"
    );
}
