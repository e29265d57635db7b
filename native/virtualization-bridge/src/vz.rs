// The Virtualization.framework glue (macOS only): a MachinePlan becomes a
// VZVirtualMachineConfiguration and a VZVirtualMachine on a serial dispatch
// queue of its own. Every VZ object is created, used and released on that
// queue; the JS thread only enqueues work there and never waits for the VM,
// and whatever the VM reports reaches JS as an Event through a non-blocking
// sink (a thread-safe function, see lib.rs).
use std::ffi::c_int;
use std::sync::Arc;

use block2::RcBlock;
use dispatch2::{DispatchQueue, DispatchQueueAttr, DispatchRetained};
use objc2::rc::Retained;
use objc2::runtime::ProtocolObject;
use objc2::{define_class, msg_send, AnyThread, DefinedClass};
use objc2_foundation::{NSArray, NSError, NSObject, NSObjectProtocol, NSString, NSURL};
use objc2_virtualization::*;

use crate::config::{rosetta_available, HostLimits, MachinePlan, NetworkPlan};
use crate::error::{from_ns_error, BridgeError, BridgeResult, ErrorCode};

/// What the VM tells JS. `request` pairs an answer with the call that asked.
pub enum Event {
    Started { request: u32 },
    StartFailed { request: u32, error: BridgeError },
    Stopped { request: u32 },
    StopFailed { request: u32, error: BridgeError },
    Connected { request: u32, fd: c_int },
    ConnectFailed { request: u32, error: BridgeError },
    /// The guest opened a connection to a host port we listen on.
    Accepted { port: u32, fd: c_int },
    /// The guest powered off or rebooted.
    GuestStopped,
    /// The VM stopped on an error of its own.
    Crashed { error: BridgeError },
}

/// Delivers events to JS without blocking; returns false when JS is gone
/// (the caller then owns whatever the event carried, e.g. closes its fd).
pub trait EventSink: Send + Sync + 'static {
    fn send(&self, event: Event) -> bool;
}

pub type Sink = Arc<dyn EventSink>;

/// Values that live on the VM's queue: created inside a closure running on
/// it, touched only inside such closures, and dropped there (Machine::drop).
struct OnQueue<T>(T);
// SAFETY: the queue is serial and the only place the value is used, so it is
// never used from two threads at once; moving it between closures is fine.
unsafe impl<T> Send for OnQueue<T> {}
unsafe impl<T> Sync for OnQueue<T> {}

struct Parts {
    vm: Retained<VZVirtualMachine>,
    socket: Retained<VZVirtioSocketDevice>,
    listener: Retained<VZVirtioSocketListener>,
    // The VM and the listener hold their delegates weakly: keep them here.
    _vm_delegate: Retained<VmDelegate>,
    _listener_delegate: Retained<ListenerDelegate>,
}

define_class!(
    // SAFETY: NSObject has no subclassing requirements; no Drop.
    #[unsafe(super(NSObject))]
    #[name = "ContainerVzMachineDelegate"]
    #[ivars = Sink]
    struct VmDelegate;

    unsafe impl NSObjectProtocol for VmDelegate {}

    unsafe impl VZVirtualMachineDelegate for VmDelegate {
        #[unsafe(method(guestDidStopVirtualMachine:))]
        fn guest_did_stop(&self, _vm: &VZVirtualMachine) {
            self.ivars().send(Event::GuestStopped);
        }

        #[unsafe(method(virtualMachine:didStopWithError:))]
        fn did_stop_with_error(&self, _vm: &VZVirtualMachine, error: &NSError) {
            self.ivars().send(Event::Crashed { error: ns_error("the VM stopped", error) });
        }
    }
);

define_class!(
    // SAFETY: NSObject has no subclassing requirements; no Drop.
    #[unsafe(super(NSObject))]
    #[name = "ContainerVzListenerDelegate"]
    #[ivars = Sink]
    struct ListenerDelegate;

    unsafe impl NSObjectProtocol for ListenerDelegate {}

    unsafe impl VZVirtioSocketListenerDelegate for ListenerDelegate {
        #[unsafe(method(listener:shouldAcceptNewConnection:fromSocketDevice:))]
        fn should_accept(
            &self,
            _listener: &VZVirtioSocketListener,
            connection: &VZVirtioSocketConnection,
            _device: &VZVirtioSocketDevice,
        ) -> bool {
            accept(self.ivars(), connection)
        }
    }
);

/// Hands a duplicate of the connection's descriptor to JS; the duplicate
/// keeps the stream open once VZ releases the connection object.
fn accept(sink: &Sink, connection: &VZVirtioSocketConnection) -> bool {
    // SAFETY: plain property reads on the queue the delegate is called on.
    let (port, fd) = unsafe { (connection.destinationPort(), connection.fileDescriptor()) };
    let Some(fd) = dup_cloexec(fd) else { return false };
    if !sink.send(Event::Accepted { port, fd }) {
        close_fd(fd);
    }
    true
}

impl VmDelegate {
    fn new(sink: Sink) -> Retained<Self> {
        let this = Self::alloc().set_ivars(sink);
        // SAFETY: NSObject's init on a freshly allocated object.
        unsafe { msg_send![super(this), init] }
    }
}

impl ListenerDelegate {
    fn new(sink: Sink) -> Retained<Self> {
        let this = Self::alloc().set_ivars(sink);
        // SAFETY: as above.
        unsafe { msg_send![super(this), init] }
    }
}

fn ns_error(what: &str, error: &NSError) -> BridgeError {
    let domain = error.domain().to_string();
    let description = error.localizedDescription().to_string();
    from_ns_error(what, &domain, error.code() as i64, &description)
}

/// A duplicate of `fd` (close-on-exec) that outlives the VZ connection object.
fn dup_cloexec(fd: c_int) -> Option<c_int> {
    // SAFETY: fcntl on a descriptor VZ gave us; a failure returns -1.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    (dup >= 0).then_some(dup)
}

fn close_fd(fd: c_int) {
    // SAFETY: we own `fd` (a duplicate nobody else has).
    unsafe { libc::close(fd) };
}

fn file_url(path: &str) -> Retained<NSURL> {
    NSURL::fileURLWithPath(&NSString::from_str(path))
}

/// The host's limits, read from the framework's class properties.
pub fn host_limits() -> HostLimits {
    // SAFETY: class properties without preconditions.
    unsafe {
        HostLimits {
            arch: if cfg!(target_arch = "aarch64") { "aarch64" } else { "x86_64" }.into(),
            min_cpus: VZVirtualMachineConfiguration::minimumAllowedCPUCount() as u64,
            max_cpus: VZVirtualMachineConfiguration::maximumAllowedCPUCount() as u64,
            min_memory_bytes: VZVirtualMachineConfiguration::minimumAllowedMemorySize(),
            max_memory_bytes: VZVirtualMachineConfiguration::maximumAllowedMemorySize(),
        }
    }
}

/// Whether this Mac can run VMs at all (Apple Silicon or VT-x, not nested).
pub fn supported() -> bool {
    // SAFETY: class property without preconditions.
    unsafe { VZVirtualMachine::isSupported() }
}

fn storage_devices(plan: &MachinePlan) -> BridgeResult<Vec<Retained<VZStorageDeviceConfiguration>>> {
    let mut devices = Vec::with_capacity(plan.disks.len());
    for disk in &plan.disks {
        // SAFETY: initializers of freshly allocated objects with valid arguments.
        let attachment = unsafe {
            VZDiskImageStorageDeviceAttachment::initWithURL_readOnly_cachingMode_synchronizationMode_error(
                VZDiskImageStorageDeviceAttachment::alloc(),
                &file_url(&disk.path),
                disk.read_only,
                VZDiskImageCachingMode(disk.caching.raw()),
                VZDiskImageSynchronizationMode(disk.sync.raw()),
            )
        }
        .map_err(|e| ns_error(&format!("disk {}", disk.path), &e))?;
        let block = unsafe {
            VZVirtioBlockDeviceConfiguration::initWithAttachment(VZVirtioBlockDeviceConfiguration::alloc(), &attachment)
        };
        devices.push(block.into_super());
    }
    Ok(devices)
}

fn directory_shares(plan: &MachinePlan) -> BridgeResult<Vec<Retained<VZDirectorySharingDeviceConfiguration>>> {
    let mut devices = Vec::new();
    for share in &plan.shares {
        // SAFETY: initializers of freshly allocated objects; tags checked by config::plan.
        unsafe {
            let dir = VZSharedDirectory::initWithURL_readOnly(VZSharedDirectory::alloc(), &file_url(&share.path), share.read_only);
            let single = VZSingleDirectoryShare::initWithDirectory(VZSingleDirectoryShare::alloc(), &dir);
            let fs = VZVirtioFileSystemDeviceConfiguration::initWithTag(
                VZVirtioFileSystemDeviceConfiguration::alloc(),
                &NSString::from_str(&share.tag),
            );
            fs.setShare(Some(&single));
            devices.push(fs.into_super());
        }
    }
    if let Some(tag) = plan.rosetta_tag {
        rosetta_available(unsafe { VZLinuxRosettaDirectoryShare::availability() }.0)?;
        // SAFETY: initializer of a freshly allocated object.
        let rosetta = unsafe { VZLinuxRosettaDirectoryShare::initWithError(VZLinuxRosettaDirectoryShare::alloc()) }
            .map_err(|e| ns_error("the Rosetta share", &e))?;
        unsafe {
            let fs = VZVirtioFileSystemDeviceConfiguration::initWithTag(
                VZVirtioFileSystemDeviceConfiguration::alloc(),
                &NSString::from_str(tag),
            );
            fs.setShare(Some(&rosetta));
            devices.push(fs.into_super());
        }
    }
    Ok(devices)
}

/// The whole configuration, validated by the framework.
fn configuration(plan: &MachinePlan) -> BridgeResult<Retained<VZVirtualMachineConfiguration>> {
    // SAFETY (whole function): initializers of freshly allocated objects and
    // setters of a configuration nobody else holds yet.
    unsafe {
        let config = VZVirtualMachineConfiguration::new();
        let boot = VZLinuxBootLoader::initWithKernelURL(VZLinuxBootLoader::alloc(), &file_url(&plan.kernel_path));
        boot.setCommandLine(&NSString::from_str(&plan.command_line));
        config.setBootLoader(Some(&boot));
        config.setPlatform(&VZGenericPlatformConfiguration::new());
        config.setCPUCount(plan.cpus);
        config.setMemorySize(plan.memory_bytes);

        // The console: hvc0 in the guest, appended to the boot log.
        let console = VZFileSerialPortAttachment::initWithURL_append_error(
            VZFileSerialPortAttachment::alloc(),
            &file_url(&plan.console_log_path),
            true,
        )
        .map_err(|e| ns_error(&format!("console log {}", plan.console_log_path), &e))?;
        let serial = VZVirtioConsoleDeviceSerialPortConfiguration::new();
        serial.setAttachment(Some(&console));
        config.setSerialPorts(&NSArray::from_retained_slice(&[serial.into_super()]));

        config.setStorageDevices(&NSArray::from_retained_slice(&storage_devices(plan)?));
        config.setSocketDevices(&NSArray::from_retained_slice(&[VZVirtioSocketDeviceConfiguration::new().into_super()]));
        config.setDirectorySharingDevices(&NSArray::from_retained_slice(&directory_shares(plan)?));
        config.setEntropyDevices(&NSArray::from_retained_slice(&[VZVirtioEntropyDeviceConfiguration::new().into_super()]));
        // Lets the host take back memory the guest has freed.
        config.setMemoryBalloonDevices(&NSArray::from_retained_slice(&[
            VZVirtioTraditionalMemoryBalloonDeviceConfiguration::new().into_super(),
        ]));
        if plan.network == NetworkPlan::Nat {
            let net = VZVirtioNetworkDeviceConfiguration::new();
            net.setAttachment(Some(&VZNATNetworkDeviceAttachment::new()));
            config.setNetworkDevices(&NSArray::from_retained_slice(&[net.into_super()]));
        }

        config.validateWithError().map_err(|e| ns_error("invalid VM configuration", &e))?;
        Ok(config)
    }
}

/// One VM. Methods return at once; results arrive as events.
pub struct Machine {
    queue: DispatchRetained<DispatchQueue>,
    parts: Option<Arc<OnQueue<Parts>>>,
    sink: Sink,
}

impl Machine {
    /// Builds the configuration and the VM on a new serial queue (the JS
    /// thread waits for that, never for the guest).
    pub fn new(id: &str, plan: &MachinePlan, sink: Sink) -> BridgeResult<Machine> {
        let queue = DispatchQueue::new(&format!("com.container-vm.vz.{id}"), DispatchQueueAttr::SERIAL);
        let mut built: Option<BridgeResult<OnQueue<Parts>>> = None;
        let on_queue = queue.clone();
        let sink_for_build = sink.clone();
        queue.exec_sync(|| {
            built = Some(build(plan, &on_queue, sink_for_build).map(OnQueue));
        });
        let parts = built.unwrap_or_else(|| Err(BridgeError::new(ErrorCode::Internal, "the VM queue did not run")))?;
        Ok(Machine { queue, parts: Some(Arc::new(parts)), sink })
    }

    fn on_queue(&self, work: impl FnOnce(&Parts, &Sink) + Send + 'static) {
        let Some(parts) = self.parts.clone() else { return };
        let sink = self.sink.clone();
        self.queue.exec_async(move || work(&parts.0, &sink));
    }

    pub fn start(&self, request: u32) {
        self.on_queue(move |p, sink| {
            let sink = sink.clone();
            let done = RcBlock::new(move |err: *mut NSError| {
                // SAFETY: VZ passes a valid NSError or null.
                match unsafe { err.as_ref() } {
                    None => sink.send(Event::Started { request }),
                    Some(e) => sink.send(Event::StartFailed { request, error: ns_error("start", e) }),
                };
            });
            // SAFETY: on the VM's queue.
            unsafe { p.vm.startWithCompletionHandler(&done) };
        });
    }

    /// Ends the VM at once (no guest shutdown): what stop() and kill() mean.
    pub fn stop(&self, request: u32) {
        self.on_queue(move |p, sink| {
            // SAFETY: on the VM's queue.
            if !unsafe { p.vm.canStop() } {
                let state = crate::config::state_name(unsafe { p.vm.state() }.0);
                sink.send(Event::StopFailed {
                    request,
                    error: BridgeError::new(ErrorCode::InvalidState, format!("cannot stop a VM that is {state}")),
                });
                return;
            }
            let sink = sink.clone();
            let done = RcBlock::new(move |err: *mut NSError| {
                // SAFETY: VZ passes a valid NSError or null.
                match unsafe { err.as_ref() } {
                    None => sink.send(Event::Stopped { request }),
                    Some(e) => sink.send(Event::StopFailed { request, error: ns_error("stop", e) }),
                };
            });
            unsafe { p.vm.stopWithCompletionHandler(&done) };
        });
    }

    /// Opens a stream to a guest port; the answer is Connected (a file
    /// descriptor JS owns) or ConnectFailed.
    pub fn connect(&self, request: u32, port: u32) {
        self.on_queue(move |p, sink| {
            let sink = sink.clone();
            let done = RcBlock::new(move |conn: *mut VZVirtioSocketConnection, err: *mut NSError| {
                // SAFETY: VZ passes a valid connection or a valid error.
                match (unsafe { conn.as_ref() }, unsafe { err.as_ref() }) {
                    (Some(conn), _) => {
                        let fd = dup_cloexec(unsafe { conn.fileDescriptor() });
                        unsafe { conn.close() };
                        match fd {
                            Some(fd) => {
                                if !sink.send(Event::Connected { request, fd }) {
                                    close_fd(fd);
                                }
                            }
                            None => {
                                let error = BridgeError::new(ErrorCode::ResourceExhausted, format!("no file descriptor for guest port {port}"));
                                sink.send(Event::ConnectFailed { request, error });
                            }
                        }
                    }
                    (None, Some(e)) => {
                        sink.send(Event::ConnectFailed { request, error: ns_error(&format!("guest vsock port {port}"), e) });
                    }
                    (None, None) => {
                        let error = BridgeError::new(ErrorCode::Internal, format!("guest vsock port {port}: no connection and no error"));
                        sink.send(Event::ConnectFailed { request, error });
                    }
                }
            });
            // SAFETY: on the VM's queue.
            unsafe { p.socket.connectToPort_completionHandler(port, &done) };
        });
    }

    /// From now on the guest's connections to host `port` arrive as Accepted.
    pub fn listen(&self, port: u32) {
        // SAFETY: on the VM's queue.
        self.on_queue(move |p, _| unsafe { p.socket.setSocketListener_forPort(&p.listener, port) });
    }

    pub fn unlisten(&self, port: u32) {
        // SAFETY: on the VM's queue.
        self.on_queue(move |p, _| unsafe { p.socket.removeSocketListenerForPort(port) });
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        // VZ objects are released on their queue too.
        if let Some(parts) = self.parts.take() {
            self.queue.exec_async(move || drop(parts));
        }
    }
}

/// Runs on the VM's queue.
fn build(plan: &MachinePlan, queue: &DispatchQueue, sink: Sink) -> BridgeResult<Parts> {
    let config = configuration(plan)?;
    // SAFETY: we are on `queue`, the queue the VM is bound to.
    unsafe {
        let vm = VZVirtualMachine::initWithConfiguration_queue(VZVirtualMachine::alloc(), &config, queue);
        let vm_delegate = VmDelegate::new(sink.clone());
        vm.setDelegate(Some(ProtocolObject::from_ref(&*vm_delegate)));
        let device = vm.socketDevices().firstObject().ok_or_else(|| {
            BridgeError::new(ErrorCode::Internal, "the VM has no vsock device")
        })?;
        // The configuration holds exactly one VZVirtioSocketDeviceConfiguration.
        let socket: Retained<VZVirtioSocketDevice> = Retained::cast_unchecked(device);
        let listener_delegate = ListenerDelegate::new(sink);
        let listener = VZVirtioSocketListener::new();
        listener.setDelegate(Some(ProtocolObject::from_ref(&*listener_delegate)));
        Ok(Parts { vm, socket, listener, _vm_delegate: vm_delegate, _listener_delegate: listener_delegate })
    }
}
