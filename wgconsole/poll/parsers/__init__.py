"""Pure text parsers: command output fetched over SSH -> the records in `core.records`.

Every parser raises ParseError (never IndexError or ValueError) on output it does not
recognise, including a command's own error message, which is then quoted in the reason.
"""

from wgconsole.poll.parsers.errors import ParseError
from wgconsole.poll.parsers.ipvs_proc import parse_bool_sysctl, parse_ip_vs, parse_ip_vs_conn
from wgconsole.poll.parsers.ipvsadm import (
    FWM_PROTOCOL,
    DestStats,
    ServiceKey,
    merge_stats,
    parse_endpoint,
    parse_ipvsadm_list,
    parse_ipvsadm_stats,
)
from wgconsole.poll.parsers.link import parse_clock, parse_link_state
from wgconsole.poll.parsers.sections import Section, section_command, section_text, split_sections
from wgconsole.poll.parsers.wg_dump import parse_wg_dump, parse_wg_dump_all

__all__ = [
    "FWM_PROTOCOL",
    "DestStats",
    "ParseError",
    "Section",
    "ServiceKey",
    "merge_stats",
    "parse_bool_sysctl",
    "parse_clock",
    "parse_endpoint",
    "parse_ip_vs",
    "parse_ip_vs_conn",
    "parse_ipvsadm_list",
    "parse_ipvsadm_stats",
    "parse_link_state",
    "parse_wg_dump",
    "parse_wg_dump_all",
    "section_command",
    "section_text",
    "split_sections",
]
