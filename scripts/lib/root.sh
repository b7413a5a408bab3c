# Sourced by the install scripts. root_command sets the array `sudo` to what runs a command as root:
# nothing when this is root, `sudo -n` when password-less sudo works; it returns 1 when neither is
# possible (the caller says what to run as root instead).
root_command() {
  if [ "$(id -u)" -eq 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    return 1
  fi
}
