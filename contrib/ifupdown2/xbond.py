# xbond's ifupdown2 addon (Proxmox VE's ifupdown2), installed by
# `xbond install` into /usr/share/ifupdown2/addons/ and listed first in
# /etc/network/ifupdown2/addons.conf ("pre-up,xbond", "post-down,xbond").
#
# It takes over the stanzas with `bond-driver xbond`: when ifupdown2 builds
# its dependency graph, this addon (first in the list) moves the stanza's
# bond-* attributes out of the way (to xbond-bond-*), so that the kernel bond
# addon does not make a kernel bond; in pre-up it starts the bond with
# `xbond ifupdown` (bond0 exists and forwards when it returns, or ifup fails
# with xbond's error), in post-down it stops it and removes bond0.
import os
import subprocess

try:
    from ifupdown2.lib.addon import Addon
    from ifupdown2.ifupdownaddons.modulebase import moduleBase
except ImportError:
    from lib.addon import Addon
    from ifupdownaddons.modulebase import moduleBase

XBOND = "@XBOND@"
SAVED = "xbond-"


class xbond(Addon, moduleBase):
    """ifupdown2 addon: bonds run by xbond (`bond-driver xbond`)."""

    _modinfo = {
        "mhelp": "xbond: a userspace AF_XDP bond in place of the kernel bond",
        "attrs": {
            "bond-driver": {
                "help": "xbond: this bond runs in xbond, not the kernel",
                "validvals": ["xbond"],
                "example": ["bond-driver xbond"],
            },
        },
    }

    def __init__(self, *args, **kargs):
        Addon.__init__(self)
        moduleBase.__init__(self, *args, **kargs)

    @staticmethod
    def _ours(ifaceobj):
        cfg = ifaceobj.config
        return (cfg.get("bond-driver") or cfg.get(SAVED + "bond-driver") or [None])[0] == "xbond"

    def get_dependent_ifacenames(self, ifaceobj, ifacenames_all=None):
        if not self._ours(ifaceobj):
            return None
        for key in [k for k in ifaceobj.config if k.startswith("bond-")]:
            ifaceobj.config[SAVED + key] = ifaceobj.config.pop(key)
        return None

    def _hook(self, ifaceobj, phase):
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "IFACE": ifaceobj.name,
            "PHASE": phase,
            "MODE": "start" if phase == "pre-up" else "stop",
        }
        for key, vals in ifaceobj.config.items():
            name = key[len(SAVED):] if key.startswith(SAVED + "bond-") else key
            if name.startswith("bond-") or name.startswith("xbond-"):
                env["IF_" + name.upper().replace("-", "_")] = vals[0]
        r = subprocess.run([XBOND, "ifupdown"], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise Exception((r.stderr or r.stdout).strip())

    def run(self, ifaceobj, operation, query_ifaceobj=None, ifaceobj_getfunc=None, **kwargs):
        if not self._ours(ifaceobj):
            return
        if operation == "pre-up":
            self._hook(ifaceobj, "pre-up")
        elif operation == "post-down":
            self._hook(ifaceobj, "post-down")
