// Pure translation of our VM config (helpers/hypervisor/types.ts VmConfig,
// plus the VZ-only extras) into the plan the macOS glue turns into a
// VZVirtualMachineConfiguration: every choice and every check lives here, so
// that it is unit-tested on any host. No Objective-C, no I/O.
use crate::error::{BridgeError, BridgeResult, ErrorCode};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpec {
    pub path: String,
    /// "raw" or "qcow2" (VZ opens raw images only).
    pub format: String,
    pub read_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareSpec {
    /// The virtiofs tag the guest mounts (`mount -t virtiofs TAG DIR`).
    pub tag: String,
    pub path: String,
    pub read_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineSpec {
    pub id: String,
    pub arch: String,
    pub cpus: u32,
    pub memory_mib: u32,
    pub kernel_path: String,
    pub kernel_args: Vec<String>,
    /// The init filesystem first (vda, read-only), then the container's disks.
    pub disks: Vec<DiskSpec>,
    pub console_log_path: String,
    /// "none", "nat" or "vmnet".
    pub network: String,
    pub shares: Vec<ShareSpec>,
    /// Share Rosetta with the guest (tag `rosetta`) to run x86_64 binaries.
    pub rosetta: bool,
}

/// What this host allows (VZVirtualMachineConfiguration's class limits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostLimits {
    /// The guest architecture VZ runs here: the host's own.
    pub arch: String,
    pub min_cpus: u64,
    pub max_cpus: u64,
    pub min_memory_bytes: u64,
    pub max_memory_bytes: u64,
}

/// VZDiskImageCachingMode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CachingMode {
    Cached,
}

impl CachingMode {
    pub fn raw(self) -> isize {
        match self {
            CachingMode::Cached => 2,
        }
    }
}

/// VZDiskImageSynchronizationMode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// fsync(2) on guest flushes, not F_FULLFSYNC: the data reaches the drive's cache.
    Fsync,
    /// Never synchronise (the disk is read-only anyway).
    None,
}

impl SyncMode {
    pub fn raw(self) -> isize {
        match self {
            SyncMode::Fsync => 2,
            SyncMode::None => 3,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskPlan {
    pub path: String,
    pub read_only: bool,
    pub caching: CachingMode,
    pub sync: SyncMode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkPlan {
    None,
    /// VZNATNetworkDeviceAttachment: the host's NAT, DHCP on 192.168.64.0/24.
    Nat,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachinePlan {
    pub cpus: usize,
    pub memory_bytes: u64,
    pub kernel_path: String,
    pub command_line: String,
    pub disks: Vec<DiskPlan>,
    pub console_log_path: String,
    pub network: NetworkPlan,
    pub shares: Vec<ShareSpec>,
    /// The tag of the Rosetta share, when there is one.
    pub rosetta_tag: Option<&'static str>,
}

pub const ROSETTA_TAG: &str = "rosetta";
/// VZVirtioFileSystemDeviceConfiguration rejects longer tags.
const MAX_TAG_BYTES: usize = 36;
const MIB: u64 = 1024 * 1024;

/// Ours first, the caller's after (later settings win in the kernel). The VZ
/// serial port is a virtio console: hvc0. A guest reboot (panic=-1) ends the
/// VM, as with QEMU.
const KERNEL_CMDLINE_BASE: &[&str] =
    &["console=hvc0", "panic=-1", "quiet", "root=/dev/vda", "ro", "rootfstype=ext4", "init=/sbin/vminitd"];

fn invalid(message: String) -> BridgeError {
    BridgeError::new(ErrorCode::InvalidArgument, message)
}

pub fn kernel_command_line(extra: &[String]) -> BridgeResult<String> {
    for arg in extra {
        if arg.is_empty() || arg.chars().any(|c| c.is_whitespace() || c == '\0') {
            return Err(invalid(format!("kernel argument {arg:?} is empty or holds whitespace")));
        }
    }
    let mut all: Vec<&str> = KERNEL_CMDLINE_BASE.to_vec();
    all.extend(extra.iter().map(String::as_str));
    Ok(all.join(" "))
}

fn require_absolute(path: &str, what: &str) -> BridgeResult<()> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(invalid(format!("{what} path {path:?} is not absolute")))
    }
}

/// Read-only disks (the init filesystem every VM shares) stay in the host's
/// page cache and never sync; writable disks are disposable clones, cached
/// too, with guest flushes honoured by fsync (F_FULLFSYNC costs milliseconds
/// per flush and buys nothing for a container's scratch disk).
fn disk_plan(disk: &DiskSpec, index: usize) -> BridgeResult<DiskPlan> {
    require_absolute(&disk.path, if index == 0 { "init filesystem" } else { "disk" })?;
    match disk.format.as_str() {
        "raw" => {}
        "qcow2" => {
            return Err(BridgeError::new(
                ErrorCode::Unsupported,
                format!("disk {}: Virtualization.framework opens raw images only, not qcow2", disk.path),
            )
            .with_hint("on macOS container disks are APFS clones of the raw image (clonefile)"))
        }
        other => return Err(invalid(format!("disk {}: unknown format {other:?}", disk.path))),
    }
    Ok(DiskPlan {
        path: disk.path.clone(),
        read_only: disk.read_only,
        caching: CachingMode::Cached,
        sync: if disk.read_only { SyncMode::None } else { SyncMode::Fsync },
    })
}

fn network_plan(network: &str) -> BridgeResult<NetworkPlan> {
    match network {
        "none" | "" => Ok(NetworkPlan::None),
        "nat" => Ok(NetworkPlan::Nat),
        "vmnet" => Err(BridgeError::new(
            ErrorCode::Unsupported,
            "vmnet networks are not supported by this backend yet; use nat",
        )
        .with_hint("VZVmnetNetworkDeviceAttachment needs a vmnet network object the bindings do not expose")),
        other => Err(invalid(format!("unknown network {other:?} (none, nat or vmnet)"))),
    }
}

pub fn validate_tag(tag: &str) -> BridgeResult<()> {
    if tag.is_empty() || tag.len() > MAX_TAG_BYTES {
        return Err(invalid(format!("share tag {tag:?} must be 1 to {MAX_TAG_BYTES} bytes")));
    }
    if tag.chars().any(|c| c.is_control()) {
        return Err(invalid(format!("share tag {tag:?} holds control characters")));
    }
    Ok(())
}

fn share_plans(shares: &[ShareSpec], rosetta: bool) -> BridgeResult<Vec<ShareSpec>> {
    let mut seen: Vec<&str> = Vec::new();
    if rosetta {
        seen.push(ROSETTA_TAG);
    }
    for share in shares {
        validate_tag(&share.tag)?;
        require_absolute(&share.path, "shared directory")?;
        if seen.contains(&share.tag.as_str()) {
            return Err(BridgeError::new(ErrorCode::Exists, format!("share tag {:?} is used twice", share.tag)));
        }
        seen.push(&share.tag);
    }
    Ok(shares.to_vec())
}

/// Checks `spec` against this host and translates it.
pub fn plan(spec: &MachineSpec, limits: &HostLimits) -> BridgeResult<MachinePlan> {
    if spec.arch != limits.arch {
        return Err(BridgeError::new(
            ErrorCode::Unsupported,
            format!("Virtualization.framework runs {} guests on this host, not {}", limits.arch, spec.arch),
        )
        .with_hint("x86_64 programs run in an aarch64 guest through Rosetta"));
    }
    let cpus = u64::from(spec.cpus);
    if cpus < limits.min_cpus || cpus > limits.max_cpus {
        return Err(invalid(format!("cpus must be from {} to {} on this host, not {}", limits.min_cpus, limits.max_cpus, spec.cpus)));
    }
    let memory_bytes = u64::from(spec.memory_mib) * MIB;
    if memory_bytes < limits.min_memory_bytes || memory_bytes > limits.max_memory_bytes {
        return Err(invalid(format!(
            "memory must be from {} MiB to {} MiB on this host, not {} MiB",
            limits.min_memory_bytes.div_ceil(MIB),
            limits.max_memory_bytes / MIB,
            spec.memory_mib
        )));
    }
    require_absolute(&spec.kernel_path, "guest kernel")?;
    require_absolute(&spec.console_log_path, "console log")?;
    if spec.disks.is_empty() {
        return Err(invalid("a VM needs at least its init filesystem disk".into()));
    }
    let disks = spec.disks.iter().enumerate().map(|(i, d)| disk_plan(d, i)).collect::<BridgeResult<Vec<_>>>()?;
    Ok(MachinePlan {
        cpus: spec.cpus as usize,
        memory_bytes,
        kernel_path: spec.kernel_path.clone(),
        command_line: kernel_command_line(&spec.kernel_args)?,
        disks,
        console_log_path: spec.console_log_path.clone(),
        network: network_plan(&spec.network)?,
        shares: share_plans(&spec.shares, spec.rosetta)?,
        rosetta_tag: spec.rosetta.then_some(ROSETTA_TAG),
    })
}

/// VZLinuxRosettaDirectoryShare.availability: NotSupported 0, NotInstalled 1, Installed 2.
pub fn rosetta_available(availability: isize) -> BridgeResult<()> {
    match availability {
        2 => Ok(()),
        1 => Err(BridgeError::new(ErrorCode::Unavailable, "Rosetta is not installed")
            .with_hint("softwareupdate --install-rosetta --agree-to-license")),
        _ => Err(BridgeError::new(ErrorCode::Unsupported, "Rosetta for Linux is not supported on this Mac")),
    }
}

/// VZVirtualMachineState, for messages.
pub fn state_name(raw: isize) -> &'static str {
    match raw {
        0 => "stopped",
        1 => "running",
        2 => "paused",
        3 => "error",
        4 => "starting",
        5 => "pausing",
        6 => "resuming",
        7 => "stopping",
        8 => "saving",
        9 => "restoring",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HostLimits {
        HostLimits { arch: "aarch64".into(), min_cpus: 1, max_cpus: 8, min_memory_bytes: 128 * MIB, max_memory_bytes: 16384 * MIB }
    }

    fn spec() -> MachineSpec {
        MachineSpec {
            id: "vm1".into(),
            arch: "aarch64".into(),
            cpus: 2,
            memory_mib: 512,
            kernel_path: "/assets/Image".into(),
            kernel_args: vec!["vminitd.log=2000".into()],
            disks: vec![
                DiskSpec { path: "/assets/initfs.ext4".into(), format: "raw".into(), read_only: true },
                DiskSpec { path: "/c/rootfs.ext4".into(), format: "raw".into(), read_only: false },
            ],
            console_log_path: "/c/boot.log".into(),
            network: "none".into(),
            shares: vec![],
            rosetta: false,
        }
    }

    fn code(r: BridgeResult<MachinePlan>) -> ErrorCode {
        r.unwrap_err().code
    }

    #[test]
    fn translates_a_config() {
        let p = plan(&spec(), &limits()).unwrap();
        assert_eq!(p.cpus, 2);
        assert_eq!(p.memory_bytes, 512 * MIB);
        assert_eq!(
            p.command_line,
            "console=hvc0 panic=-1 quiet root=/dev/vda ro rootfstype=ext4 init=/sbin/vminitd vminitd.log=2000"
        );
        assert_eq!(p.disks[0], DiskPlan { path: "/assets/initfs.ext4".into(), read_only: true, caching: CachingMode::Cached, sync: SyncMode::None });
        assert_eq!(p.disks[1].sync, SyncMode::Fsync);
        assert!(!p.disks[1].read_only);
        assert_eq!(p.network, NetworkPlan::None);
        assert_eq!(p.rosetta_tag, None);
    }

    #[test]
    fn raw_mode_values_match_the_framework() {
        assert_eq!(CachingMode::Cached.raw(), 2);
        assert_eq!(SyncMode::Fsync.raw(), 2);
        assert_eq!(SyncMode::None.raw(), 3);
    }

    #[test]
    fn checks_size_against_the_host() {
        assert_eq!(code(plan(&MachineSpec { cpus: 9, ..spec() }, &limits())), ErrorCode::InvalidArgument);
        assert_eq!(code(plan(&MachineSpec { cpus: 0, ..spec() }, &limits())), ErrorCode::InvalidArgument);
        let small = plan(&MachineSpec { memory_mib: 64, ..spec() }, &limits()).unwrap_err();
        assert_eq!(small.message, "memory must be from 128 MiB to 16384 MiB on this host, not 64 MiB");
    }

    #[test]
    fn runs_only_the_host_architecture() {
        let e = plan(&MachineSpec { arch: "x86_64".into(), ..spec() }, &limits()).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unsupported);
        assert!(e.hint.unwrap().contains("Rosetta"));
    }

    #[test]
    fn rejects_qcow2_unknown_formats_relative_paths_and_no_disks() {
        let mut s = spec();
        s.disks[1].format = "qcow2".into();
        assert_eq!(code(plan(&s, &limits())), ErrorCode::Unsupported);
        s.disks[1].format = "vmdk".into();
        assert_eq!(code(plan(&s, &limits())), ErrorCode::InvalidArgument);
        assert_eq!(code(plan(&MachineSpec { disks: vec![], ..spec() }, &limits())), ErrorCode::InvalidArgument);
        assert_eq!(code(plan(&MachineSpec { kernel_path: "Image".into(), ..spec() }, &limits())), ErrorCode::InvalidArgument);
        assert_eq!(code(plan(&MachineSpec { console_log_path: "boot.log".into(), ..spec() }, &limits())), ErrorCode::InvalidArgument);
    }

    #[test]
    fn rejects_kernel_arguments_with_whitespace() {
        assert_eq!(code(plan(&MachineSpec { kernel_args: vec!["a b".into()], ..spec() }, &limits())), ErrorCode::InvalidArgument);
        assert_eq!(code(plan(&MachineSpec { kernel_args: vec!["".into()], ..spec() }, &limits())), ErrorCode::InvalidArgument);
    }

    #[test]
    fn networks() {
        assert_eq!(plan(&MachineSpec { network: "nat".into(), ..spec() }, &limits()).unwrap().network, NetworkPlan::Nat);
        assert_eq!(code(plan(&MachineSpec { network: "vmnet".into(), ..spec() }, &limits())), ErrorCode::Unsupported);
        assert_eq!(code(plan(&MachineSpec { network: "bridge".into(), ..spec() }, &limits())), ErrorCode::InvalidArgument);
    }

    #[test]
    fn shares_need_valid_unique_tags_and_absolute_paths() {
        let share = |tag: &str, path: &str| ShareSpec { tag: tag.into(), path: path.into(), read_only: true };
        let ok = plan(&MachineSpec { shares: vec![share("m0", "/src")], rosetta: true, ..spec() }, &limits()).unwrap();
        assert_eq!(ok.shares.len(), 1);
        assert_eq!(ok.rosetta_tag, Some("rosetta"));
        let dup = MachineSpec { shares: vec![share("m0", "/a"), share("m0", "/b")], ..spec() };
        assert_eq!(code(plan(&dup, &limits())), ErrorCode::Exists);
        let clash = MachineSpec { shares: vec![share("rosetta", "/a")], rosetta: true, ..spec() };
        assert_eq!(code(plan(&clash, &limits())), ErrorCode::Exists);
        let long = MachineSpec { shares: vec![share(&"t".repeat(37), "/a")], ..spec() };
        assert_eq!(code(plan(&long, &limits())), ErrorCode::InvalidArgument);
        assert!(validate_tag(&"t".repeat(36)).is_ok());
        let rel = MachineSpec { shares: vec![share("m0", "src")], ..spec() };
        assert_eq!(code(plan(&rel, &limits())), ErrorCode::InvalidArgument);
    }

    #[test]
    fn rosetta_availability() {
        assert!(rosetta_available(2).is_ok());
        let missing = rosetta_available(1).unwrap_err();
        assert_eq!(missing.code, ErrorCode::Unavailable);
        assert!(missing.hint.unwrap().contains("softwareupdate"));
        assert_eq!(rosetta_available(0).unwrap_err().code, ErrorCode::Unsupported);
    }

    #[test]
    fn state_names() {
        assert_eq!(state_name(1), "running");
        assert_eq!(state_name(7), "stopping");
        assert_eq!(state_name(42), "unknown");
    }
}
