//! How many hosts to add, or which may go, for a group to stay within target after its worst loss. Works on
//! aggregates (totals, per-domain capacity, the sorted host capacities) so that each trial costs a few
//! operations per domain and resource, which keeps 1,000-host groups quick.

/// A group's capacity for one resource, with its peak load and target.
#[derive(Debug, Clone)]
pub(crate) struct PoolResource {
    /// Peak load.
    pub peak: f64,
    /// Target as a fraction.
    pub target: f64,
    /// Sum of host capacities.
    pub total: f64,
    /// Capacity per failure domain, indexed like [`Pool::domain_is_zone`].
    pub domain_capacity: Vec<f64>,
    /// Every host's capacity, ascending.
    pub sorted_capacity: Vec<f64>,
}

/// Capacity of the group across resources, and its domains.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    /// One entry per sized resource.
    pub resources: Vec<PoolResource>,
    /// True for a labelled zone, false for an unzoned host (its own domain).
    pub domain_is_zone: Vec<bool>,
    /// Hosts lost at once in the N+k case.
    pub k: usize,
}

/// Largest number of hosts the planner will add before it gives up.
pub(crate) const MAX_HOSTS_TO_ADD: u32 = 10_000;

/// Small tolerance so that a case exactly at its target counts as within it despite rounding.
const EPSILON: f64 = 1e-9;

/// Peak over target × survivors: at most 1 means within target. Infinite when load has no survivor to go to.
pub(crate) fn pressure(peak: f64, target: f64, survivor_capacity: f64) -> f64 {
    if peak <= 0.0 {
        0.0
    } else if survivor_capacity <= EPSILON {
        f64::INFINITY
    } else {
        peak / (target * survivor_capacity)
    }
}

/// Whether a pressure is within target.
pub(crate) fn within(pressure: f64) -> bool {
    pressure <= 1.0 + EPSILON
}

/// Sum of the `k` largest of an ascending list.
fn top_k_sum(sorted: &[f64], k: usize) -> f64 {
    sorted[sorted.len().saturating_sub(k)..].iter().sum()
}

/// The largest value of a list and the index of its first occurrence, and the largest of the others.
fn largest_two(values: &[f64]) -> (f64, usize, f64) {
    let mut first = (0.0, usize::MAX);
    let mut second = 0.0;
    for (index, value) in values.iter().copied().enumerate() {
        if value > first.0 {
            second = first.0;
            first = (value, index);
        } else if value > second {
            second = value;
        }
    }
    (first.0, first.1, second)
}

impl PoolResource {
    fn pressure_with(&self, total: f64, largest_domain: f64, top_k: f64) -> f64 {
        pressure(self.peak, self.target, total - largest_domain.max(top_k))
    }
}

impl Pool {
    /// The highest pressure across resources after the worst loss.
    pub fn pressure(&self) -> f64 {
        self.resources
            .iter()
            .map(|resource| {
                let (largest_domain, _, _) = largest_two(&resource.domain_capacity);
                resource.pressure_with(
                    resource.total,
                    largest_domain,
                    top_k_sum(&resource.sorted_capacity, self.k),
                )
            })
            .fold(0.0, f64::max)
    }

    /// Hosts shaped like `template` (one capacity per resource) to add until every loss stays within target,
    /// each placed where it lowers the pressure most: a zone, or (when the group has unzoned hosts) a new
    /// unzoned host. `None` when adding cannot help (one zone and nothing else) or would take more than
    /// [`MAX_HOSTS_TO_ADD`].
    pub fn hosts_to_add(&self, template: &[f64]) -> Option<u32> {
        let mut pool = self.clone();
        let allow_new_domain = pool.domain_is_zone.iter().any(|is_zone| !is_zone);
        let zones: Vec<usize> = (0..pool.domain_is_zone.len())
            .filter(|&domain| pool.domain_is_zone[domain])
            .collect();
        if !allow_new_domain && zones.len() < 2 {
            // Every host added would land in the same zone, which is exactly what must survive.
            return within(pool.pressure()).then_some(0);
        }
        for added in 0..=MAX_HOSTS_TO_ADD {
            if within(pool.pressure()) {
                return Some(added);
            }
            // Per resource: the largest domain and the top-k sum once the template host is among the hosts.
            let context: Vec<(f64, f64)> = pool
                .resources
                .iter()
                .zip(template)
                .map(|(resource, &size)| {
                    let top_k = top_k_sum(&resource.sorted_capacity, pool.k);
                    let n = resource.sorted_capacity.len();
                    let top_k_after = if pool.k == 0 {
                        0.0
                    } else if n < pool.k {
                        top_k + size
                    } else {
                        let kth = resource.sorted_capacity[n - pool.k];
                        if size > kth {
                            top_k - kth + size
                        } else {
                            top_k
                        }
                    };
                    (largest_two(&resource.domain_capacity).0, top_k_after)
                })
                .collect();
            let trial = |domain: Option<usize>| -> (f64, f64) {
                let mut worst: f64 = 0.0;
                let mut share = 0.0;
                for ((resource, &size), &(largest, top_k_after)) in
                    pool.resources.iter().zip(template).zip(&context)
                {
                    let placed = domain.map_or(0.0, |domain| resource.domain_capacity[domain]) + size;
                    let total = resource.total + size;
                    worst = worst.max(resource.pressure_with(total, largest.max(placed), top_k_after));
                    share += placed / total;
                }
                (worst, share)
            };
            // Lowest pressure first; among equals the smallest resulting domain, which fills zones evenly.
            let mut candidates: Vec<(Option<usize>, (f64, f64))> = zones
                .iter()
                .map(|&zone| (Some(zone), trial(Some(zone))))
                .collect();
            if allow_new_domain {
                candidates.push((None, trial(None)));
            }
            let (choice, _) = candidates
                .into_iter()
                .min_by(|a, b| a.1 .0.total_cmp(&b.1 .0).then(a.1 .1.total_cmp(&b.1 .1)))?;
            pool.add(choice, template);
        }
        None
    }

    fn add(&mut self, domain: Option<usize>, template: &[f64]) {
        let new_domain = self.domain_is_zone.len();
        if domain.is_none() {
            self.domain_is_zone.push(false);
        }
        for (resource, &size) in self.resources.iter_mut().zip(template) {
            resource.total += size;
            match domain {
                Some(domain) => resource.domain_capacity[domain] += size,
                None => {
                    debug_assert_eq!(resource.domain_capacity.len(), new_domain);
                    resource.domain_capacity.push(size);
                }
            }
            let at = resource.sorted_capacity.partition_point(|&value| value < size);
            resource.sorted_capacity.insert(at, size);
        }
    }

    /// Hosts that could go while every loss stays within target, smallest first from the domain where the
    /// loss hurts least. `hosts` lists (domain, name, capacity per resource); a zone keeps at least one host,
    /// and at least two domains remain.
    pub fn removable(&self, hosts: &[(usize, String, Vec<f64>)]) -> Vec<String> {
        let mut pool = self.clone();
        if !within(pool.pressure()) {
            return Vec::new();
        }
        let domains = pool.domain_is_zone.len();
        // Per domain, its hosts largest first, so the smallest is popped from the end.
        let mut queues: Vec<Vec<usize>> = vec![Vec::new(); domains];
        for (index, (domain, _, _)) in hosts.iter().enumerate() {
            queues[*domain].push(index);
        }
        for queue in &mut queues {
            queue.sort_by(|&a, &b| {
                let (a, b) = (&hosts[a].2, &hosts[b].2);
                b.iter()
                    .zip(a)
                    .map(|(x, y)| x.total_cmp(y))
                    .find(|order| order.is_ne())
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
        }
        let mut removed = Vec::new();
        loop {
            let live_domains = queues.iter().filter(|queue| !queue.is_empty()).count();
            let context: Vec<(f64, usize, f64, f64, Option<f64>)> = pool
                .resources
                .iter()
                .map(|resource| {
                    let (first, first_at, second) = largest_two(&resource.domain_capacity);
                    let n = resource.sorted_capacity.len();
                    let top_k = top_k_sum(&resource.sorted_capacity, pool.k);
                    // The host that joins the k largest when one of them goes.
                    let below_kth =
                        (pool.k > 0 && n > pool.k).then(|| resource.sorted_capacity[n - pool.k - 1]);
                    (first, first_at, second, top_k, below_kth)
                })
                .collect();
            let mut best: Option<(usize, f64)> = None;
            for (domain, queue) in queues.iter().enumerate() {
                let Some(&host) = queue.last() else { continue };
                let leaves_domain_empty = queue.len() == 1;
                if leaves_domain_empty && (pool.domain_is_zone[domain] || live_domains <= 2) {
                    continue;
                }
                let capacity = &hosts[host].2;
                let mut worst: f64 = 0.0;
                for (r, resource) in pool.resources.iter().enumerate() {
                    let (first, first_at, second, top_k, replacement) = context[r];
                    let size = capacity[r];
                    let left_in_domain = resource.domain_capacity[domain] - size;
                    let largest = if domain == first_at {
                        second.max(left_in_domain)
                    } else {
                        first
                    };
                    let n = resource.sorted_capacity.len();
                    let top_k_after = match replacement {
                        _ if pool.k == 0 => 0.0,
                        _ if n <= pool.k => top_k - size,
                        Some(next) if size >= resource.sorted_capacity[n - pool.k] => top_k - size + next,
                        _ => top_k,
                    };
                    worst = worst.max(resource.pressure_with(resource.total - size, largest, top_k_after));
                }
                if within(worst) && best.is_none_or(|(_, pressure)| worst < pressure) {
                    best = Some((domain, worst));
                }
            }
            let Some((domain, _)) = best else { break };
            let host = queues[domain].pop().expect("candidate host");
            for (resource, &size) in pool.resources.iter_mut().zip(&hosts[host].2) {
                resource.total -= size;
                resource.domain_capacity[domain] -= size;
                let at = resource.sorted_capacity.partition_point(|&value| value < size);
                resource.sorted_capacity.remove(at);
            }
            removed.push(hosts[host].1.clone());
        }
        removed
    }
}
