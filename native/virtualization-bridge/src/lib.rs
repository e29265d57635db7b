// The macOS hypervisor backend's native half: a Node addon over
// Virtualization.framework. `config` and `error` are pure and build (and are
// tested) everywhere; `vz` and the N-API surface below exist only on macOS.
// helpers/hypervisor/vz/ is the TypeScript half.
pub mod config;
pub mod error;

#[cfg(target_os = "macos")]
mod vz;

#[cfg(target_os = "macos")]
mod addon {
    use std::sync::Arc;

    use napi::bindgen_prelude::Function;
    use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
    use napi::{Error, Result, Status};
    use napi_derive::napi;

    use crate::config::{self, DiskSpec, MachineSpec, ShareSpec};
    use crate::error::BridgeError;
    use crate::vz::{self, Event, EventSink, Machine};

    const MIB: u64 = 1024 * 1024;

    #[napi(object)]
    pub struct DiskOptions {
        pub path: String,
        pub format: String,
        pub read_only: bool,
    }

    #[napi(object)]
    pub struct ShareOptions {
        pub tag: String,
        pub path: String,
        pub read_only: bool,
    }

    /// VmConfig (helpers/hypervisor/types.ts) plus the VZ-only extras.
    #[napi(object)]
    pub struct MachineOptions {
        pub id: String,
        pub arch: String,
        pub cpus: u32,
        pub memory_mib: u32,
        pub kernel_path: String,
        pub kernel_args: Vec<String>,
        pub disks: Vec<DiskOptions>,
        pub console_log_path: String,
        pub network: String,
        pub shares: Vec<ShareOptions>,
        pub rosetta: bool,
    }

    /// One event; `error` is the JSON envelope `{code, message, hint}`.
    #[napi(object)]
    pub struct BridgeEvent {
        pub kind: String,
        pub request: Option<u32>,
        pub port: Option<u32>,
        pub fd: Option<i32>,
        pub error: Option<String>,
    }

    #[napi(object)]
    pub struct HostInfo {
        pub supported: bool,
        pub arch: String,
        pub min_cpus: u32,
        pub max_cpus: u32,
        pub min_memory_mib: u32,
        pub max_memory_mib: u32,
    }

    fn js_error(err: BridgeError) -> Error {
        Error::from_reason(err.to_json())
    }

    fn event(kind: &str) -> BridgeEvent {
        BridgeEvent { kind: kind.into(), request: None, port: None, fd: None, error: None }
    }

    fn to_js(e: Event) -> BridgeEvent {
        match e {
            Event::Started { request } => BridgeEvent { request: Some(request), ..event("started") },
            Event::StartFailed { request, error } => {
                BridgeEvent { request: Some(request), error: Some(error.to_json()), ..event("startFailed") }
            }
            Event::Stopped { request } => BridgeEvent { request: Some(request), ..event("stopped") },
            Event::StopFailed { request, error } => {
                BridgeEvent { request: Some(request), error: Some(error.to_json()), ..event("stopFailed") }
            }
            Event::Connected { request, fd } => BridgeEvent { request: Some(request), fd: Some(fd), ..event("connected") },
            Event::ConnectFailed { request, error } => {
                BridgeEvent { request: Some(request), error: Some(error.to_json()), ..event("connectFailed") }
            }
            Event::Accepted { port, fd } => BridgeEvent { port: Some(port), fd: Some(fd), ..event("accepted") },
            Event::GuestStopped => event("guestStopped"),
            Event::Crashed { error } => BridgeEvent { error: Some(error.to_json()), ..event("crashed") },
        }
    }

    /// Weak: a VM does not by itself keep Node's event loop alive.
    type EventFn = ThreadsafeFunction<BridgeEvent, (), BridgeEvent, Status, false, true>;

    struct JsSink(EventFn);

    impl EventSink for JsSink {
        fn send(&self, e: Event) -> bool {
            self.0.call(to_js(e), ThreadsafeFunctionCallMode::NonBlocking) == Status::Ok
        }
    }

    #[napi]
    pub fn host_info() -> HostInfo {
        let limits = vz::host_limits();
        HostInfo {
            supported: vz::supported(),
            arch: limits.arch,
            min_cpus: limits.min_cpus.min(u64::from(u32::MAX)) as u32,
            max_cpus: limits.max_cpus.min(u64::from(u32::MAX)) as u32,
            min_memory_mib: limits.min_memory_bytes.div_ceil(MIB).min(u64::from(u32::MAX)) as u32,
            max_memory_mib: (limits.max_memory_bytes / MIB).min(u64::from(u32::MAX)) as u32,
        }
    }

    #[napi]
    pub struct VzMachine {
        inner: Machine,
    }

    #[napi]
    impl VzMachine {
        /// Validates, translates and builds the VM (not started). Throws an
        /// Error whose message is the JSON envelope.
        #[napi(constructor)]
        pub fn new(options: MachineOptions, on_event: Function<BridgeEvent, ()>) -> Result<Self> {
            let spec = MachineSpec {
                id: options.id,
                arch: options.arch,
                cpus: options.cpus,
                memory_mib: options.memory_mib,
                kernel_path: options.kernel_path,
                kernel_args: options.kernel_args,
                disks: options
                    .disks
                    .into_iter()
                    .map(|d| DiskSpec { path: d.path, format: d.format, read_only: d.read_only })
                    .collect(),
                console_log_path: options.console_log_path,
                network: options.network,
                shares: options
                    .shares
                    .into_iter()
                    .map(|s| ShareSpec { tag: s.tag, path: s.path, read_only: s.read_only })
                    .collect(),
                rosetta: options.rosetta,
            };
            let plan = config::plan(&spec, &vz::host_limits()).map_err(js_error)?;
            let tsfn: EventFn = on_event
                .build_threadsafe_function::<BridgeEvent>()
                .weak::<true>()
                .callee_handled::<false>()
                .build()?;
            let inner = Machine::new(&spec.id, &plan, Arc::new(JsSink(tsfn))).map_err(js_error)?;
            Ok(VzMachine { inner })
        }

        #[napi]
        pub fn start(&self, request: u32) {
            self.inner.start(request);
        }

        #[napi]
        pub fn stop(&self, request: u32) {
            self.inner.stop(request);
        }

        #[napi]
        pub fn connect(&self, request: u32, port: u32) {
            self.inner.connect(request, port);
        }

        #[napi]
        pub fn listen(&self, port: u32) {
            self.inner.listen(port);
        }

        #[napi]
        pub fn unlisten(&self, port: u32) {
            self.inner.unlisten(port);
        }
    }
}
