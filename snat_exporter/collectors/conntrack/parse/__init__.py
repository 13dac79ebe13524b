"""Pure parsing of what the kernel gives us: ctnetlink bytes and procfs text -> flow keys and counters.

No I/O here, so everything is tested with byte and text fixtures without root.

- :mod:`.records`: the flow key and the errors every parser raises;
- :mod:`.netlink`: netlink messages and attributes, one conntrack entry, the statistics and address replies;
- :mod:`.table`: a whole ctnetlink table dump, with the fast path that keeps 200,000 flows cheap;
- :mod:`.procfs`: the /proc/net text files, the fallback source.
"""
