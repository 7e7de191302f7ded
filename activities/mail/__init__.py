"""Email in and out of the CRM: messages sent from a record, mailboxes read over IMAP, the BCC address."""
