//! The key a user probably meant ("did you mean"): a dash form, a synonym,
//! or a near spelling by edit distance.

/// The key the user probably meant: the underscore form of a dash form, a
/// known synonym, or a near spelling.
pub(super) fn suggest(key: &str, candidates: &[&str]) -> Option<String> {
    if key.len() > 64 {
        return None;
    }
    let lower = key.trim().to_ascii_lowercase().replace('-', "_");
    let bare = lower.strip_prefix("bond_").unwrap_or(&lower);
    let bare = match bare {
        "slave" | "ports" | "members" | "interfaces" | "devices" => "slaves",
        "ad_sys_priority" => "ad_actor_sys_prio",
        "ad_sys_mac_addr" => "ad_actor_system",
        "hash_policy" | "xmit_policy" | "transmit_hash_policy" => "xmit_hash_policy",
        other => other,
    };
    if candidates.contains(&bare) {
        return Some(bare.to_string());
    }
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(bare, c);
        let better = match best {
            Some((bd, _)) => d < bd,
            None => true,
        };
        if d <= (c.len() / 4).max(1) && better {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            let delete = prev[j + 1] + 1;
            let insert = cur[j] + 1;
            cur.push(subst.min(delete).min(insert));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}
