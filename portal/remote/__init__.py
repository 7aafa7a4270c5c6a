"""Remote access: admin services, private user connections, protocol relays, SSH keys and SFTP."""
