//! What walbench reads off the machine: per-thread CPU time, peak memory, the file system
//! type, a description of the machine, today's date, and page-cache eviction of a file.

use std::fs;
use std::path::Path;
use std::time::SystemTime;

/// A thread of this process, by its kernel id.
pub type Tid = u32;

/// The ids of this process's threads whose name starts with `prefix`. actix names its
/// arbiter threads `actix-rt|system:S|arbiter:N`; the kernel keeps the first 15 bytes.
pub fn threads_named(prefix: &str) -> Vec<Tid> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir("/proc/self/task") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<Tid>().ok()) else {
            continue;
        };
        let comm = fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim_end().starts_with(prefix) {
            out.push(tid);
        }
    }
    out.sort_unstable();
    out
}

/// CPU time a thread has used, in nanoseconds: the first field of `schedstat` (exact), or
/// `utime + stime` of `stat` in clock ticks (10 ms steps) where `schedstat` is missing.
/// `None` once the thread is gone.
pub fn thread_cpu_ns(tid: Tid) -> Option<u64> {
    let base = format!("/proc/self/task/{tid}");
    if let Ok(s) = fs::read_to_string(format!("{base}/schedstat")) {
        if let Some(ns) = s.split_whitespace().next().and_then(|v| v.parse().ok()) {
            return Some(ns);
        }
    }
    let stat = fs::read_to_string(format!("{base}/stat")).ok()?;
    ticks_to_ns(&stat)
}

/// CPU time of the whole process (all threads, live and exited), in nanoseconds.
pub fn process_cpu_ns() -> Option<u64> {
    ticks_to_ns(&fs::read_to_string("/proc/self/stat").ok()?)
}

/// `utime + stime` (fields 14 and 15) of a `stat` line, in nanoseconds. The command name
/// (field 2) may hold spaces, so fields are counted after its closing parenthesis.
fn ticks_to_ns(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so field n is f[n - 3].
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some((utime + stime) * 10_000_000)
}

/// Peak resident memory of the process (`VmHWM`), in bytes.
pub fn peak_rss_bytes() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// The file system `dir` lives on, by name where walbench knows the magic number.
pub fn fs_type(dir: &Path) -> String {
    match rustix::fs::statfs(dir) {
        Ok(s) => match s.f_type as u64 {
            0xEF53 => "ext4".into(),
            0x5846_5342 => "xfs".into(),
            0x9123_683E => "btrfs".into(),
            0x0102_1994 => "tmpfs".into(),
            0x2FC1_2FC1 => "zfs".into(),
            0x794C_7630 => "overlayfs".into(),
            other => format!("fs type {other:#x}"),
        },
        Err(e) => format!("unknown ({e})"),
    }
}

/// A one-line description of the machine: cores, CPU model, memory, kernel.
pub fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |kib| kib as f64 / (1024.0 * 1024.0));
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores ({model}), {mem_gib:.0} GiB, Linux {}",
        kernel.trim()
    )
}

/// Today's date (UTC) as `YYYY-MM-DD`, from the system clock.
pub fn today() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Howard Hinnant's days-to-civil algorithm.
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Drops a file's pages from the page cache (after they are on disk), so the next read
/// comes from the device: only this file's pages, nothing else on the machine.
pub fn evict(path: &Path) -> std::io::Result<()> {
    let f = fs::File::open(path)?;
    f.sync_all()?;
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "1 (a b) S 0 0 0 0 0 0 0 0 0 0 7 3 0 0";
        assert_eq!(super::ticks_to_ns(line), Some(100_000_000));
    }
}
