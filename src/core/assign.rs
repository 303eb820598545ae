//! Balanced, sticky assignment of a topic's partitions to a group's live members.

use super::message::Name;

/// Every member gets `n / m` or `n / m + 1` partitions, and a partition stays with
/// its current owner whenever that owner is live and within its share, so a join
/// or a leave moves as few partitions as it can. Deterministic: every context that
/// computes it from the same records gets the same answer.
///
/// `members` must be sorted and free of repeats.
pub fn sticky_assign(current: &[Option<Name>], members: &[Name]) -> Vec<Option<Name>> {
    let partitions = current.len();
    if members.is_empty() {
        return vec![None; partitions];
    }
    let held = |m: &Name| current.iter().filter(|o| o.as_ref() == Some(m)).count();
    // Members holding the most keep the larger shares, so fewer partitions move.
    let mut order: Vec<(usize, usize)> = members.iter().enumerate().map(|(i, m)| (i, held(m))).collect();
    super::sort::sort_by(&mut order, |a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let base = partitions / members.len();
    let extra = partitions % members.len();
    let mut quota = vec![base; members.len()];
    for (rank, (index, _)) in order.iter().enumerate() {
        if rank < extra {
            quota[*index] += 1;
        }
    }
    let mut assigned = vec![0usize; members.len()];
    let mut next: Vec<Option<Name>> = vec![None; partitions];
    for (p, owner) in current.iter().enumerate() {
        if let Some(owner) = owner {
            if let Ok(i) = members.binary_search(owner) {
                if assigned[i] < quota[i] {
                    assigned[i] += 1;
                    next[p] = Some(owner.clone());
                }
            }
        }
    }
    let mut member = 0;
    for slot in next.iter_mut().filter(|s| s.is_none()) {
        while assigned[member] >= quota[member] {
            member += 1;
        }
        assigned[member] += 1;
        *slot = Some(members[member].clone());
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<Name> {
        list.iter().map(|s| Name::from(*s)).collect()
    }

    fn counts(a: &[Option<Name>], members: &[Name]) -> Vec<usize> {
        members.iter().map(|m| a.iter().filter(|o| o.as_ref() == Some(m)).count()).collect()
    }

    #[test]
    fn balanced() {
        for partitions in 1..20 {
            for m in 1..8 {
                let members: Vec<Name> = (0..m).map(|i| Name::from(format!("m{i:02}"))).collect();
                let a = sticky_assign(&vec![None; partitions], &members);
                assert!(a.iter().all(Option::is_some));
                let c = counts(&a, &members);
                let (min, max) = (c.iter().min().unwrap(), c.iter().max().unwrap());
                assert!(max - min <= 1, "{partitions} over {m}: {c:?}");
            }
        }
    }

    #[test]
    fn sticky_on_join_and_leave() {
        let two = names(&["a", "b"]);
        let first = sticky_assign(&vec![None; 8], &two);
        let three = names(&["a", "b", "c"]);
        let second = sticky_assign(&first, &three);
        let moved = first.iter().zip(&second).filter(|(x, y)| x != y).count();
        assert_eq!(moved, 2, "only c's share moves: {first:?} -> {second:?}");
        let after_leave = sticky_assign(&second, &names(&["a", "c"]));
        for (before, after) in second.iter().zip(&after_leave) {
            if before.as_deref() != Some("b") {
                assert_eq!(before, after, "partitions of a and c stay put");
            }
        }
    }

    #[test]
    fn no_members_no_owners() {
        assert_eq!(sticky_assign(&names(&["a"]).into_iter().map(Some).collect::<Vec<_>>(), &[]), vec![None]);
    }
}
