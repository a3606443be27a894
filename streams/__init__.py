"""Stream processing: the faust app and its agents (news, reviews, chats)."""
