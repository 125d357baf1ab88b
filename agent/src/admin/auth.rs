//! Who may talk to the admin socket: root, the agent's own user (the same as root in
//! production; it matters for an agent run unprivileged in tests), or a member of the admin
//! group.
use nix::unistd::{Gid, Uid, User, getgrouplist};

/// Decides on a peer's credentials; `agent_uid` is the agent's effective uid. `groups` yields
/// the peer user's groups and is only consulted when nothing else decides.
pub fn allowed(
    uid: u32,
    gid: u32,
    agent_uid: u32,
    admin_gid: Option<u32>,
    groups: impl FnOnce(u32) -> Vec<u32>,
) -> bool {
    if uid == 0 || uid == agent_uid {
        return true;
    }
    match admin_gid {
        None => false,
        Some(admin) => gid == admin || groups(uid).contains(&admin),
    }
}

/// Groups of user `uid` in the group database (primary and supplementary); empty when the
/// user is unknown. Blocking (NSS).
pub fn user_groups(uid: u32) -> Vec<u32> {
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
        return Vec::new();
    };
    let Ok(name) = std::ffi::CString::new(user.name) else {
        return Vec::new();
    };
    getgrouplist(&name, user.gid)
        .map(|gs| gs.into_iter().map(Gid::as_raw).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_or_admin_group_only() {
        /// uid, gid, agent uid, admin_gid, the user's groups, allowed.
        type Case = (u32, u32, u32, Option<u32>, &'static [u32], bool);
        let cases: [Case; 11] = [
            (0, 0, 0, None, &[], true),
            (0, 5, 0, Some(7), &[], true),
            (0, 0, 1000, None, &[], true),
            (1000, 0, 0, None, &[0], false),
            (1000, 1000, 0, None, &[1000], false),
            (1000, 1000, 1000, None, &[], true),
            (1001, 1000, 1000, None, &[1000], false),
            (1000, 7, 0, Some(7), &[], true),
            (1000, 1000, 0, Some(7), &[1000, 7], true),
            (1000, 1000, 0, Some(7), &[1000, 8], false),
            (1000, 0, 0, Some(7), &[], false),
        ];
        for (uid, gid, agent, admin, groups, want) in cases {
            let got = allowed(uid, gid, agent, admin, |u| {
                assert_eq!(u, uid);
                groups.to_vec()
            });
            assert_eq!(
                got, want,
                "uid {uid} gid {gid} agent {agent} admin {admin:?} groups {groups:?}"
            );
        }
    }

    #[test]
    fn groups_lookup_is_not_needed_when_uid_or_primary_group_decide() {
        assert!(allowed(0, 0, 0, Some(7), |_| panic!("looked up")));
        assert!(allowed(1000, 1000, 1000, Some(7), |_| panic!("looked up")));
        assert!(allowed(1000, 7, 0, Some(7), |_| panic!("looked up")));
        assert!(!allowed(1000, 1000, 0, None, |_| panic!("looked up")));
    }

    #[test]
    fn root_user_groups_include_root_group() {
        assert!(user_groups(0).contains(&0));
        assert!(user_groups(u32::MAX - 7).is_empty());
    }
}
