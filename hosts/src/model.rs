//! The hosting models as a type: the `MODEL` argument of `hostlab serve`
//! (DESIGN.md "Command line") with every capability the driver, the
//! scenarios and the tests ask about as a method, so that no list of model
//! names is kept anywhere else.

/// A hosting model, or one of the parts other models start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Model {
    /// A bare hyper server answering `/ping` (no router, no limits): the
    /// floor every model's cost per request is measured against.
    Baseline,
    /// One process: actor system + axum on hyper on the client port.
    Edge,
    /// `edge` on actix-web.
    EdgeActix,
    /// Front (reverse proxy + process manager) forwarding to an `app` process.
    Proxy,
    /// Supervisor owning the socket, `worker` processes hosting the app in-process.
    Inprocess,
    /// Supervisor + stateless `front` workers + a long-lived `actors` service.
    Split,
    /// The system's nginx in front of `hostlab serve app` (a peer `hostlab run` drives).
    Nginx,
    /// The same nginx in front of `hostlab serve baseline`: the floor of a
    /// reverse proxy hop (`/ping` only).
    NginxBaseline,
    /// The app process behind `proxy` and `nginx` (`edge` under another name).
    App,
    /// A worker process of `inprocess`.
    Worker,
    /// The actor service of `split`.
    Actors,
    /// A front worker of `split` (or started by hand with `--actors ADDR`).
    Front,
}

/// What a process does within a model; the name is a JSON key of
/// results.json `cpu.by_role` (DESIGN.md "Results").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The process clients connect to when it is not the app itself: the
    /// reverse proxy of `proxy`, the socket-owning supervisor of
    /// `inprocess` and `split`.
    Front,
    /// A process serving the workload's router over its own HTTP listener
    /// (`edge`, `edge-actix`, the app of `proxy` and `nginx`).
    App,
    /// A process calling the router in-process on the front's socket (the
    /// workers of `inprocess`, the front workers of `split`).
    Worker,
    /// The actor service of `split`.
    Actors,
    /// nginx itself.
    Nginx,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Front, Role::App, Role::Worker, Role::Actors, Role::Nginx];

    /// The JSON key of `cpu.by_role`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Front => "front",
            Role::App => "app",
            Role::Worker => "worker",
            Role::Actors => "actors",
            Role::Nginx => "nginx",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Model {
    pub const ALL: [Model; 12] = [
        Model::Baseline,
        Model::Edge,
        Model::EdgeActix,
        Model::Proxy,
        Model::Inprocess,
        Model::Split,
        Model::Nginx,
        Model::NginxBaseline,
        Model::App,
        Model::Worker,
        Model::Actors,
        Model::Front,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Model::Baseline => "baseline",
            Model::Edge => "edge",
            Model::EdgeActix => "edge-actix",
            Model::Proxy => "proxy",
            Model::Inprocess => "inprocess",
            Model::Split => "split",
            Model::Nginx => "nginx",
            Model::NginxBaseline => "nginx-baseline",
            Model::App => "app",
            Model::Worker => "worker",
            Model::Actors => "actors",
            Model::Front => "front",
        }
    }

    /// A model `hostlab run` compares (false for the parts other models start).
    pub fn is_top_level(self) -> bool {
        !matches!(self, Model::App | Model::Worker | Model::Actors | Model::Front)
    }

    /// The models `hostlab run` compares, in report order.
    pub fn top_level() -> impl Iterator<Item = Model> {
        Model::ALL.into_iter().filter(|m| m.is_top_level())
    }

    /// The roles of the processes the model runs, in the order of
    /// [`Role::ALL`]; for a part, the one role of its process.
    pub fn roles(self) -> &'static [Role] {
        match self {
            Model::Baseline | Model::Edge | Model::EdgeActix | Model::App => &[Role::App],
            Model::Proxy => &[Role::Front, Role::App],
            Model::Inprocess => &[Role::Front, Role::Worker],
            Model::Split => &[Role::Front, Role::Worker, Role::Actors],
            Model::Nginx | Model::NginxBaseline => &[Role::App, Role::Nginx],
            Model::Worker | Model::Front => &[Role::Worker],
            Model::Actors => &[Role::Actors],
        }
    }

    /// The role of the process `hostlab serve <self>` starts (nginx: none,
    /// hostlab does not serve it).
    pub fn process_role(self) -> Option<Role> {
        match self {
            Model::Baseline | Model::Edge | Model::EdgeActix | Model::App => Some(Role::App),
            Model::Proxy | Model::Inprocess | Model::Split => Some(Role::Front),
            Model::Worker | Model::Front => Some(Role::Worker),
            Model::Actors => Some(Role::Actors),
            Model::Nginx | Model::NginxBaseline => None,
        }
    }

    /// The part whose process runs the router and answers `GET /healthz`
    /// (its `model` field): the app behind `proxy` and `nginx`, the worker
    /// of `inprocess`, the front worker of `split`; the model itself when
    /// it serves clients directly.
    pub fn serving_part(self) -> Model {
        match self {
            Model::Proxy | Model::Nginx => Model::App,
            Model::NginxBaseline => Model::Baseline,
            Model::Inprocess => Model::Worker,
            Model::Split => Model::Front,
            other => other,
        }
    }

    /// What `hostlab serve` runs for this model: nginx fronts `serve app`
    /// (`nginx-baseline`: `serve baseline`).
    pub fn serve_as(self) -> Model {
        match self {
            Model::Nginx => Model::App,
            Model::NginxBaseline => Model::Baseline,
            other => other,
        }
    }

    /// Has a process manager that recycles its app (SIGHUP, admin, policy):
    /// the models with a front.
    pub fn recycles(self) -> bool {
        matches!(self, Model::Proxy | Model::Inprocess | Model::Split)
    }

    /// Takes the policy flags (start mode, idle timeout, recycle triggers)
    /// and serves an admin endpoint: the same models as [`Model::recycles`].
    pub fn has_policy(self) -> bool {
        self.recycles()
    }

    /// The requests are served by the process that holds the actors, so a
    /// recycle of that process takes their in-memory state with it (claim
    /// C4). False for `split` and its `front` workers, which send every
    /// operation to the long-lived actor service (true for `actors`, which
    /// holds them), and for `baseline`, which has no actors.
    pub fn hosts_own_actors(self) -> bool {
        !matches!(
            self,
            Model::Split | Model::Front | Model::Baseline | Model::NginxBaseline
        )
    }

    /// Serves the whole workload API; `baseline` (alone or behind nginx)
    /// answers `/ping` only.
    pub fn serves_workload(self) -> bool {
        !matches!(self, Model::Baseline | Model::NginxBaseline)
    }

    /// Needs the system's nginx.
    pub fn needs_nginx(self) -> bool {
        matches!(self, Model::Nginx | Model::NginxBaseline)
    }

    /// Flags that keep a front model's app running and never recycled by
    /// policy during a steady measurement (throughput, latency): start it
    /// before the ready line, no idle timeout, and an admin endpoint to read
    /// its process ids. Models without policies need none.
    pub fn steady_flags(self) -> &'static [&'static str] {
        if self.has_policy() {
            &[
                "--start-mode",
                "always-running",
                "--idle-timeout",
                "0",
                "--admin",
                "127.0.0.1:0",
            ]
        } else {
            &[]
        }
    }
}

impl std::fmt::Display for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Model {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Model::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            let names: Vec<_> = Model::ALL.iter().map(|m| m.name()).collect();
            format!("unknown model `{s}`; use one of: {}", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Model, Role};

    /// One row of the capability table: (model, top level, roles, recycles,
    /// hosts own actors, needs nginx, has steady flags, serves the workload).
    type Row = (Model, bool, &'static [Role], bool, bool, bool, bool, bool);

    /// Every model's capabilities in one table.
    #[test]
    fn capabilities() {
        use Role::{Actors, App, Front, Nginx, Worker};
        #[rustfmt::skip]
        let table: [Row; 12] = [
            (Model::Baseline,  true,  &[App],                  false, false, false, false, false),
            (Model::Edge,      true,  &[App],                  false, true,  false, false, true),
            (Model::EdgeActix, true,  &[App],                  false, true,  false, false, true),
            (Model::Proxy,     true,  &[Front, App],           true,  true,  false, true,  true),
            (Model::Inprocess, true,  &[Front, Worker],        true,  true,  false, true,  true),
            (Model::Split,     true,  &[Front, Worker, Actors], true, false, false, true,  true),
            (Model::Nginx,     true,  &[App, Nginx],           false, true,  true,  false, true),
            (Model::NginxBaseline, true, &[App, Nginx],        false, false, true,  false, false),
            (Model::App,       false, &[App],                  false, true,  false, false, true),
            (Model::Worker,    false, &[Worker],               false, true,  false, false, true),
            (Model::Actors,    false, &[Actors],               false, true,  false, false, true),
            (Model::Front,     false, &[Worker],               false, false, false, false, true),
        ];
        assert_eq!(table.map(|row| row.0), Model::ALL, "one row per model, in order");
        let names: Vec<_> = Model::top_level().map(Model::name).collect();
        assert_eq!(
            names,
            [
                "baseline",
                "edge",
                "edge-actix",
                "proxy",
                "inprocess",
                "split",
                "nginx",
                "nginx-baseline"
            ],
            "report order: the floor first"
        );
        for (model, top, roles, recycles, own_actors, nginx, steady, workload) in table {
            assert_eq!(model.is_top_level(), top, "{model} top level");
            assert_eq!(model.roles(), roles, "{model} roles");
            assert_eq!(model.recycles(), recycles, "{model} recycles");
            assert_eq!(model.has_policy(), recycles, "{model} policy");
            assert_eq!(model.hosts_own_actors(), own_actors, "{model} own actors");
            assert_eq!(model.needs_nginx(), nginx, "{model} nginx");
            assert_eq!(!model.steady_flags().is_empty(), steady, "{model} steady flags");
            assert_eq!(model.serves_workload(), workload, "{model} serves the workload");
            if let Some(role) = model.process_role() {
                assert!(roles.contains(&role), "{model}: its own process has one of its roles");
            }
            assert!(
                roles.windows(2).all(|w| w[0] < w[1]),
                "{model}: roles in Role::ALL order"
            );
        }
    }

    #[test]
    fn split_gets_the_steady_flags() {
        assert_eq!(Model::Split.steady_flags(), Model::Proxy.steady_flags());
        assert!(Model::Split.steady_flags().contains(&"always-running"));
    }

    #[test]
    fn names_round_trip() {
        for model in Model::ALL {
            assert_eq!(model.name().parse::<Model>(), Ok(model));
            assert_eq!(model.to_string(), model.name());
        }
        let names: Vec<_> = Role::ALL.map(Role::name).into();
        assert_eq!(names, ["front", "app", "worker", "actors", "nginx"]);
        let error = "baseline2".parse::<Model>().unwrap_err();
        assert!(
            error.contains("unknown model `baseline2`") && error.contains("edge-actix"),
            "{error}"
        );
    }

    #[test]
    fn the_serving_part_answers_healthz() {
        let pairs: Vec<_> = Model::top_level()
            .map(|m| (m.name(), m.serving_part().name()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("baseline", "baseline"),
                ("edge", "edge"),
                ("edge-actix", "edge-actix"),
                ("proxy", "app"),
                ("inprocess", "worker"),
                ("split", "front"),
                ("nginx", "app"),
                ("nginx-baseline", "baseline")
            ]
        );
        for model in Model::ALL {
            let part = model.serving_part();
            assert_eq!(part.serving_part(), part, "{model}: a part serves itself");
            assert!(
                model.roles().contains(&part.process_role().unwrap()),
                "{model}: one of its roles"
            );
        }
    }

    #[test]
    fn nginx_serves_the_app() {
        assert_eq!(Model::Nginx.serve_as(), Model::App);
        assert_eq!(Model::Nginx.process_role(), None);
        assert_eq!(Model::NginxBaseline.serve_as(), Model::Baseline);
        assert_eq!(Model::NginxBaseline.process_role(), None);
        for model in Model::ALL.into_iter().filter(|m| !m.needs_nginx()) {
            assert_eq!(model.serve_as(), model);
        }
    }
}
