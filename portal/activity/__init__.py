"""The activity feed (what users did) and the audit log (what moderators and admins did)."""
