//! CPU time, from /proc: the whole machine's (`/proc/stat`), one process's and its reaped
//! children's (`/proc/<pid>/stat`), and Redis's own (`INFO cpu`).

/// /proc reports times in USER_HZ, which is 100 on Linux whatever the kernel's HZ.
const TICKS_PER_SEC: f64 = 100.0;

/// The machine's CPU time so far, all cores together, in seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineTimes {
    pub busy: f64,
    pub idle: f64,
}

impl MachineTimes {
    /// From the first (`cpu `) line of /proc/stat: idle = idle + iowait; busy = the rest
    /// (user, nice, system, irq, softirq, steal; guest time is inside user already).
    pub fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        Self::parse(stat.lines().next()?)
    }

    fn parse(line: &str) -> Option<Self> {
        let mut fields = line.split_whitespace();
        if fields.next()? != "cpu" {
            return None;
        }
        let v: Vec<f64> = fields.take(8).filter_map(|f| f.parse().ok()).collect();
        if v.len() < 8 {
            return None;
        }
        let idle = v[3] + v[4];
        let busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
        Some(Self {
            busy: busy / TICKS_PER_SEC,
            idle: idle / TICKS_PER_SEC,
        })
    }

    /// The share of the machine's CPU time that was busy between `self` (earlier) and `later`.
    pub fn busy_share(&self, later: &Self) -> f64 {
        let busy = later.busy - self.busy;
        let all = busy + later.idle - self.idle;
        if all <= 0.0 {
            f64::NAN
        } else {
            busy / all
        }
    }

    /// Busy CPU seconds between `self` (earlier) and `later`.
    pub fn busy_secs(&self, later: &Self) -> f64 {
        later.busy - self.busy
    }
}

/// A process's own CPU seconds (user + system) and those of its children it has reaped.
pub fn process_secs(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_process(&stat)
}

fn parse_process(stat: &str) -> Option<(f64, f64)> {
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11) // fields 3..=13
        .take(4) // utime stime cutime cstime
        .filter_map(|x| x.parse().ok())
        .collect();
    if f.len() < 4 {
        return None;
    }
    Some(((f[0] + f[1]) / TICKS_PER_SEC, (f[2] + f[3]) / TICKS_PER_SEC))
}

/// Redis's CPU seconds so far (`used_cpu_user + used_cpu_sys` of `INFO cpu`).
pub async fn redis_secs(redis_url: &str) -> anyhow::Result<f64> {
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO").arg("cpu").query_async(&mut conn).await?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix(':')?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    Ok(field("used_cpu_user") + field("used_cpu_sys"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_and_process_times() {
        let m = MachineTimes::parse("cpu  100 0 50 800 50 0 0 0 0 0").unwrap();
        assert_eq!(m.busy, 1.5);
        assert_eq!(m.idle, 8.5);
        let later = MachineTimes::parse("cpu  200 0 100 850 50 0 0 0 0 0").unwrap();
        assert!((m.busy_share(&later) - 150.0 / 200.0).abs() < 1e-9);
        let p =
            parse_process("42 (kiln builder) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 300 100 20 0 9 0 1 2 3")
                .unwrap();
        assert_eq!(p, (3.0, 4.0));
    }
}
