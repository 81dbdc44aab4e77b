//! How many hosts to add, or which may go, for a group to stay within target after its worst loss. Works on
//! aggregates (totals, per-domain capacity, host count, smallest host and highest memory ratio, the sorted
//! host capacities) so that each trial costs a few operations per domain and resource, which keeps
//! 1,000-host groups quick. The same aggregates give the pressure the model reports, so the planner and the
//! report never disagree about whether a group is safe.

use super::config::Balance;

/// How one resource's load reaches the hosts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Spread {
    /// Load moves to the survivors in proportion to their capacity: the sum is what counts.
    Capacity,
    /// Every host gets the same share, so the smallest surviving host binds.
    Equal,
    /// Memory stays on its host; each host's own use (a ratio of its capacity) grows only by the share
    /// `per_load` that follows the load it takes over.
    PerHost {
        /// Fraction of used memory that scales with load.
        per_load: f64,
        /// Used over capacity of the host shape the planner adds.
        template_ratio: f64,
    },
}

/// A group's capacity for one resource, with its peak load and target.
#[derive(Debug, Clone)]
pub(crate) struct PoolResource {
    /// Peak load.
    pub peak: f64,
    /// Target as a fraction.
    pub target: f64,
    /// How the load spreads.
    pub spread: Spread,
    /// Sum of host capacities.
    pub total: f64,
    /// Capacity per failure domain, indexed like [`Pool::domain_is_zone`].
    pub domain_capacity: Vec<f64>,
    /// Smallest host capacity per domain (infinite for an empty domain).
    pub domain_min: Vec<f64>,
    /// Highest used-over-capacity ratio per domain (per-host memory only; zeros otherwise).
    pub domain_ratio_max: Vec<f64>,
    /// Every host's capacity, ascending.
    pub sorted_capacity: Vec<f64>,
}

/// Capacity of the group across resources, and its domains. Resource 0 is CPU, which sets how load moves.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    /// One entry per sized resource.
    pub resources: Vec<PoolResource>,
    /// True for a labelled zone, false for an unzoned host (its own domain).
    pub domain_is_zone: Vec<bool>,
    /// Hosts per domain.
    pub domain_hosts: Vec<usize>,
    /// Per domain, whether its loss is sized.
    pub domain_lossable: Vec<bool>,
    /// Whether a new unzoned host the planner adds is a loss that is sized.
    pub new_domains_lossable: bool,
    /// Hosts lost at once in the N+k case.
    pub k: usize,
    /// How the balancer spreads load, which sets how much more load a survivor takes.
    pub balance: Balance,
}

/// Hosts added to a domain (by index; `None` for new unzoned hosts).
pub(crate) type Placed = (Option<usize>, u32);

/// Per resource, a domain's smallest host capacity and highest memory ratio after a removal.
type DomainAfter = Vec<(f64, f64)>;

/// Largest number of hosts the planner will add before it gives up.
pub(crate) const MAX_HOSTS_TO_ADD: u32 = 10_000;

/// Most hosts the planner lists as removable; past this the report says "at least".
pub(crate) const MAX_REMOVABLE: usize = 200;

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

/// How much a survivor's load grows when `lost_share` of the load's carriers goes: 1 / (1 − share).
pub(crate) fn load_factor(lost_share: f64) -> f64 {
    if lost_share >= 1.0 - EPSILON {
        f64::INFINITY
    } else {
        1.0 / (1.0 - lost_share)
    }
}

/// Per-host memory utilisation of a host with ratio `ratio` whose load grows by `factor`.
pub(crate) fn per_host_utilisation(ratio: f64, per_load: f64, factor: f64) -> f64 {
    if ratio <= 0.0 {
        0.0
    } else {
        ratio * ((1.0 - per_load) + per_load * factor)
    }
}

/// One hypothetical change to the pool, evaluated without copying it.
#[derive(Clone, Copy)]
enum Change<'a> {
    None,
    /// A host shaped like the template, into a domain or (None) as a new unzoned host.
    Add(Option<usize>, &'a [f64]),
    /// A host leaves `domain`; per resource its capacity, and the domain's smallest capacity and highest
    /// ratio afterwards.
    Remove(usize, &'a [f64], &'a [(f64, f64)]),
}

impl Pool {
    /// The highest pressure across resources after the worst loss.
    pub fn pressure(&self) -> f64 {
        self.pressure_after(Change::None)
    }

    fn pressure_after(&self, change: Change) -> f64 {
        let domains = self.domain_is_zone.len() + usize::from(matches!(change, Change::Add(None, _)));
        let lossable = |d: usize| -> bool {
            self.domain_lossable
                .get(d)
                .copied()
                .unwrap_or(self.new_domains_lossable)
        };
        let hosts_in = |d: usize| -> usize {
            let base = self.domain_hosts.get(d).copied().unwrap_or(0);
            match change {
                Change::Add(Some(at), _) if at == d => base + 1,
                Change::Add(None, _) if d == self.domain_is_zone.len() => 1,
                Change::Remove(at, _, _) if at == d => base - 1,
                _ => base,
            }
        };
        let n: usize = self.domain_hosts.iter().sum::<usize>()
            + usize::from(matches!(change, Change::Add(..)))
            - usize::from(matches!(change, Change::Remove(..)));
        // Per resource: (total, capacity, min, ratio of domain d) after the change.
        let view = |r: usize, d: usize| -> (f64, f64, f64) {
            let resource = &self.resources[r];
            let (mut capacity, mut min, mut ratio) = if d < resource.domain_capacity.len() {
                (
                    resource.domain_capacity[d],
                    resource.domain_min[d],
                    resource.domain_ratio_max[d],
                )
            } else {
                (0.0, f64::INFINITY, 0.0)
            };
            match change {
                Change::Add(at, template)
                    if at == Some(d) || (at.is_none() && d == resource.domain_capacity.len()) =>
                {
                    capacity += template[r];
                    min = min.min(template[r]);
                    if let Spread::PerHost { template_ratio, .. } = resource.spread {
                        ratio = ratio.max(template_ratio);
                    }
                }
                Change::Remove(at, capacities, after) if at == d => {
                    capacity -= capacities[r];
                    (min, ratio) = after[r];
                }
                _ => {}
            }
            (capacity, min, ratio)
        };
        let total_of = |r: usize| -> f64 {
            let resource = &self.resources[r];
            match change {
                Change::Add(_, template) => resource.total + template[r],
                Change::Remove(_, capacities, _) => resource.total - capacities[r],
                Change::None => resource.total,
            }
        };
        let top_k_of = |r: usize| -> f64 {
            let sorted = &self.resources[r].sorted_capacity;
            let k = self.k;
            if k == 0 {
                return 0.0;
            }
            let top_k = top_k_sum(sorted, k);
            let len = sorted.len();
            match change {
                Change::None => top_k,
                Change::Add(_, template) => {
                    let size = template[r];
                    if len < k {
                        top_k + size
                    } else if size > sorted[len - k] {
                        top_k - sorted[len - k] + size
                    } else {
                        top_k
                    }
                }
                Change::Remove(_, capacities, _) => {
                    let size = capacities[r];
                    if len <= k {
                        top_k - size
                    } else if size >= sorted[len - k] {
                        top_k - size + sorted[len - k - 1]
                    } else {
                        top_k
                    }
                }
            }
        };
        // Share of the load's carriers each loss takes, from CPU and the balance: for every domain, then
        // for the k largest hosts.
        let cpu_total = total_of(0);
        let lost_share = |d: Option<usize>| -> f64 {
            match (self.balance, d) {
                (Balance::Capacity, Some(d)) if cpu_total > 0.0 => view(0, d).0 / cpu_total,
                (Balance::Capacity, None) if cpu_total > 0.0 => top_k_of(0) / cpu_total,
                (Balance::Equal, Some(d)) if n > 0 => hosts_in(d) as f64 / n as f64,
                (Balance::Equal, None) if n > 0 => self.k.min(n) as f64 / n as f64,
                _ => 1.0,
            }
        };
        let mut worst: f64 = 0.0;
        for (r, resource) in self.resources.iter().enumerate() {
            let total = total_of(r);
            let value = match resource.spread {
                Spread::Capacity => {
                    let largest = (0..domains)
                        .filter(|&d| lossable(d))
                        .map(|d| view(r, d).0)
                        .fold(0.0, f64::max);
                    pressure(resource.peak, resource.target, total - largest.max(top_k_of(r)))
                }
                Spread::Equal => {
                    // The smallest and second smallest domain minimum, so "smallest outside d" is O(1).
                    let (low, low_at, second) = smallest_two((0..domains).map(|d| view(r, d).1));
                    let global_min = low;
                    // With k = 0 the host case loses nothing: every host now.
                    let mut value = equal_pressure(resource, n.saturating_sub(self.k), global_min);
                    for d in (0..domains).filter(|&d| lossable(d)) {
                        let outside = if d == low_at { second } else { low };
                        value = value.max(equal_pressure(resource, n - hosts_in(d), outside));
                    }
                    value
                }
                Spread::PerHost { per_load, .. } => {
                    let (high, high_at, second) = largest_two_iter((0..domains).map(|d| view(r, d).2));
                    let mut value = if self.k == 0 || n <= self.k {
                        if self.k == 0 {
                            per_host_utilisation(high, per_load, 1.0) / resource.target
                        } else {
                            f64::INFINITY
                        }
                    } else {
                        per_host_utilisation(high, per_load, load_factor(lost_share(None))) / resource.target
                    };
                    for d in (0..domains).filter(|&d| lossable(d)) {
                        if hosts_in(d) == n {
                            value = f64::INFINITY;
                            continue;
                        }
                        let outside = if d == high_at { second } else { high };
                        value = value.max(
                            per_host_utilisation(outside, per_load, load_factor(lost_share(Some(d))))
                                / resource.target,
                        );
                    }
                    value
                }
            };
            worst = worst.max(value);
        }
        worst
    }

    /// Hosts shaped like `template` (one capacity per resource) to add until every loss stays within target,
    /// each placed where it lowers the pressure most: a zone, or (when the group has unzoned hosts) a new
    /// unzoned host. Returns the count and, per domain index (`None` for new unzoned hosts), how many went
    /// there. `None` when adding cannot help (one zone and nothing else) or would take more than
    /// [`MAX_HOSTS_TO_ADD`].
    pub fn hosts_to_add(&self, template: &[f64]) -> Option<(u32, Vec<Placed>)> {
        let mut pool = self.clone();
        let allow_new_domain = pool.domain_is_zone.iter().any(|is_zone| !is_zone);
        let zones: Vec<usize> = (0..pool.domain_is_zone.len())
            .filter(|&domain| pool.domain_is_zone[domain])
            .collect();
        if !allow_new_domain && zones.len() < 2 {
            // Every host added would land in the same zone, which is exactly what must survive.
            return within(pool.pressure()).then(|| (0, Vec::new()));
        }
        // A host whose own memory is over its target stays over it however many hosts join.
        if pool.stuck(template) {
            return None;
        }
        let mut placed: Vec<Placed> = Vec::new();
        // A pressure that stops falling over two rounds of the zones never reaches the target: losing a zone
        // of a balanced group moves the same share of load however many hosts it has.
        let round = 2 * zones.len().max(1) as u32;
        let mut checkpoint = f64::INFINITY;
        for added in 0..=MAX_HOSTS_TO_ADD {
            let now = pool.pressure();
            if within(now) {
                return Some((added, placed));
            }
            if added % round == 0 {
                if now >= checkpoint - EPSILON {
                    return None;
                }
                checkpoint = now;
            }
            // Lowest pressure first; among equals the smallest resulting domain share, which fills zones
            // evenly.
            let share = |domain: Option<usize>| -> f64 {
                pool.resources
                    .iter()
                    .zip(template)
                    .map(|(resource, &size)| {
                        let at = domain.map_or(0.0, |domain| resource.domain_capacity[domain]) + size;
                        at / (resource.total + size)
                    })
                    .sum()
            };
            let mut candidates: Vec<(Option<usize>, f64, f64)> = zones
                .iter()
                .map(|&zone| {
                    (
                        Some(zone),
                        pool.pressure_after(Change::Add(Some(zone), template)),
                        share(Some(zone)),
                    )
                })
                .collect();
            if allow_new_domain {
                candidates.push((
                    None,
                    pool.pressure_after(Change::Add(None, template)),
                    share(None),
                ));
            }
            let (choice, _, _) = candidates
                .into_iter()
                .min_by(|a, b| a.1.total_cmp(&b.1).then(a.2.total_cmp(&b.2)))?;
            pool.add(choice, template);
            match placed
                .iter_mut()
                .find(|(domain, _)| *domain == choice && choice.is_some())
            {
                Some((_, count)) => *count += 1,
                None => placed.push((choice, 1)),
            }
        }
        None
    }

    /// True when some per-host resource is over target even with no loss: adding hosts cannot fix it.
    fn stuck(&self, template: &[f64]) -> bool {
        self.resources
            .iter()
            .zip(template)
            .any(|(resource, _)| match resource.spread {
                Spread::PerHost {
                    per_load,
                    template_ratio,
                } => {
                    let high = resource
                        .domain_ratio_max
                        .iter()
                        .copied()
                        .fold(0.0, f64::max)
                        .max(template_ratio);
                    !within(per_host_utilisation(high, per_load, 1.0) / resource.target)
                }
                _ => false,
            })
    }

    fn add(&mut self, domain: Option<usize>, template: &[f64]) {
        let new_domain = self.domain_is_zone.len();
        match domain {
            Some(domain) => self.domain_hosts[domain] += 1,
            None => {
                self.domain_is_zone.push(false);
                self.domain_hosts.push(1);
                self.domain_lossable.push(self.new_domains_lossable);
            }
        }
        for (resource, &size) in self.resources.iter_mut().zip(template) {
            resource.total += size;
            let ratio = match resource.spread {
                Spread::PerHost { template_ratio, .. } => template_ratio,
                _ => 0.0,
            };
            match domain {
                Some(domain) => {
                    resource.domain_capacity[domain] += size;
                    resource.domain_min[domain] = resource.domain_min[domain].min(size);
                    resource.domain_ratio_max[domain] = resource.domain_ratio_max[domain].max(ratio);
                }
                None => {
                    debug_assert_eq!(resource.domain_capacity.len(), new_domain);
                    resource.domain_capacity.push(size);
                    resource.domain_min.push(size);
                    resource.domain_ratio_max.push(ratio);
                }
            }
            let at = resource.sorted_capacity.partition_point(|&value| value < size);
            resource.sorted_capacity.insert(at, size);
        }
    }

    /// Hosts that could go while every loss stays within target, smallest first from the domain where the
    /// loss hurts least. `hosts` lists (domain, name, capacity per resource, ratio per resource); a zone keeps
    /// at least one host, and at least two domains remain. At most [`MAX_REMOVABLE`] are listed.
    pub fn removable(&self, hosts: &[RemovableHost]) -> Vec<String> {
        let mut pool = self.clone();
        if !within(pool.pressure()) {
            return Vec::new();
        }
        let domains = pool.domain_is_zone.len();
        // Per domain, its hosts largest first, so the smallest is popped from the end.
        let mut queues: Vec<Vec<usize>> = vec![Vec::new(); domains];
        for (index, host) in hosts.iter().enumerate() {
            queues[host.domain].push(index);
        }
        for queue in &mut queues {
            queue.sort_by(|&a, &b| {
                let (a, b) = (&hosts[a].capacity, &hosts[b].capacity);
                b.iter()
                    .zip(a)
                    .map(|(x, y)| x.total_cmp(y))
                    .find(|order| order.is_ne())
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
        }
        let mut removed = Vec::new();
        while removed.len() < MAX_REMOVABLE {
            let live_domains = queues.iter().filter(|queue| !queue.is_empty()).count();
            // (domain, pressure after, the domain's smallest capacity and highest ratio per resource after)
            let mut best: Option<(usize, f64, DomainAfter)> = None;
            // Unzoned single-host domains of the same shape are interchangeable: try each shape once.
            let mut tried_shapes: Vec<(Vec<u64>, Vec<u64>)> = Vec::new();
            for (domain, queue) in queues.iter().enumerate() {
                let Some(&host) = queue.last() else { continue };
                let leaves_domain_empty = queue.len() == 1;
                if leaves_domain_empty && (pool.domain_is_zone[domain] || live_domains <= 2) {
                    continue;
                }
                if !pool.domain_is_zone[domain] && leaves_domain_empty {
                    let shape = (
                        hosts[host]
                            .capacity
                            .iter()
                            .map(|v| v.to_bits())
                            .collect::<Vec<_>>(),
                        hosts[host].ratio.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    );
                    if tried_shapes.contains(&shape) {
                        continue;
                    }
                    tried_shapes.push(shape);
                }
                // The domain's smallest capacity and highest ratio without this host.
                let after: Vec<(f64, f64)> = (0..pool.resources.len())
                    .map(|r| {
                        queue[..queue.len() - 1]
                            .iter()
                            .fold((f64::INFINITY, 0.0), |(min, ratio), &other| {
                                (
                                    min.min(hosts[other].capacity[r]),
                                    f64::max(ratio, hosts[other].ratio[r]),
                                )
                            })
                    })
                    .collect();
                let worst = pool.pressure_after(Change::Remove(domain, &hosts[host].capacity, &after));
                if within(worst) && best.as_ref().is_none_or(|(_, pressure, _)| worst < *pressure) {
                    best = Some((domain, worst, after));
                }
            }
            let Some((domain, _, after)) = best else { break };
            let host = queues[domain].pop().expect("candidate host");
            pool.domain_hosts[domain] -= 1;
            for (r, (resource, &size)) in pool.resources.iter_mut().zip(&hosts[host].capacity).enumerate() {
                resource.total -= size;
                resource.domain_capacity[domain] -= size;
                (resource.domain_min[domain], resource.domain_ratio_max[domain]) = after[r];
                let at = resource.sorted_capacity.partition_point(|&value| value < size);
                resource.sorted_capacity.remove(at);
            }
            removed.push(hosts[host].name.clone());
        }
        removed
    }
}

/// A present host as the removal search sees it.
#[derive(Debug, Clone)]
pub(crate) struct RemovableHost {
    /// Index of its domain.
    pub domain: usize,
    /// Host name.
    pub name: String,
    /// Capacity per resource.
    pub capacity: Vec<f64>,
    /// Used over capacity per resource (per-host memory; 0 elsewhere).
    pub ratio: Vec<f64>,
}

/// Equal-share pressure: the peak split over `survivors` hosts, on the smallest of them.
fn equal_pressure(resource: &PoolResource, survivors: usize, smallest: f64) -> f64 {
    if resource.peak <= 0.0 {
        0.0
    } else if survivors == 0 || !smallest.is_finite() || smallest <= EPSILON {
        f64::INFINITY
    } else {
        resource.peak / (resource.target * survivors as f64 * smallest)
    }
}

/// The smallest value, the index of its first occurrence, and the smallest of the others.
fn smallest_two(values: impl Iterator<Item = f64>) -> (f64, usize, f64) {
    let mut first = (f64::INFINITY, usize::MAX);
    let mut second = f64::INFINITY;
    for (index, value) in values.enumerate() {
        if value < first.0 {
            second = first.0;
            first = (value, index);
        } else if value < second {
            second = value;
        }
    }
    (first.0, first.1, second)
}

/// The largest value, the index of its first occurrence, and the largest of the others.
fn largest_two_iter(values: impl Iterator<Item = f64>) -> (f64, usize, f64) {
    let mut first = (0.0, usize::MAX);
    let mut second = 0.0;
    for (index, value) in values.enumerate() {
        if value > first.0 {
            second = first.0;
            first = (value, index);
        } else if value > second {
            second = value;
        }
    }
    (first.0, first.1, second)
}
