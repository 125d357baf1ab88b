//! Who may talk to the admin socket: root, or a member of the admin group.
use nix::unistd::{Gid, Uid, User, getgrouplist};

/// Decides on a peer's credentials; `groups` yields the peer user's groups and is only
/// consulted when the uid and primary gid do not already decide.
pub fn allowed(
    uid: u32,
    gid: u32,
    admin_gid: Option<u32>,
    groups: impl FnOnce(u32) -> Vec<u32>,
) -> bool {
    if uid == 0 {
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
        /// uid, gid, admin_gid, the user's groups, allowed.
        type Case = (u32, u32, Option<u32>, &'static [u32], bool);
        let cases: [Case; 8] = [
            (0, 0, None, &[], true),
            (0, 5, Some(7), &[], true),
            (1000, 0, None, &[0], false),
            (1000, 1000, None, &[1000], false),
            (1000, 7, Some(7), &[], true),
            (1000, 1000, Some(7), &[1000, 7], true),
            (1000, 1000, Some(7), &[1000, 8], false),
            (1000, 0, Some(7), &[], false),
        ];
        for (uid, gid, admin, groups, want) in cases {
            let got = allowed(uid, gid, admin, |u| {
                assert_eq!(u, uid);
                groups.to_vec()
            });
            assert_eq!(
                got, want,
                "uid {uid} gid {gid} admin {admin:?} groups {groups:?}"
            );
        }
    }

    #[test]
    fn groups_lookup_is_not_needed_for_root_or_primary_group() {
        assert!(allowed(0, 0, Some(7), |_| panic!("looked up")));
        assert!(allowed(1000, 7, Some(7), |_| panic!("looked up")));
        assert!(!allowed(1000, 1000, None, |_| panic!("looked up")));
    }

    #[test]
    fn root_user_groups_include_root_group() {
        assert!(user_groups(0).contains(&0));
        assert!(user_groups(u32::MAX - 7).is_empty());
    }
}
