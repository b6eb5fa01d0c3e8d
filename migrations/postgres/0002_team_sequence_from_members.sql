-- The routing sequence of a team is the highest `last_assigned_seq` of its members: one
-- table fewer to read and write per assignment, and on PostgreSQL the members' rows are the lock.
DROP TABLE team_state;
