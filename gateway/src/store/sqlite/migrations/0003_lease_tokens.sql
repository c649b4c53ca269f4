-- Version 3: every lease has a token of its own. An outcome applies only with the token
-- of the lease in force, so a lease that ran out and was taken again (even by the same
-- gateway) cannot have its old holder's late outcome recorded over the new one.
-- `lease_owner` stays: it names the gateway, so that a gateway that stops releases its
-- own leases.
ALTER TABLE messages ADD COLUMN lease_token TEXT;
