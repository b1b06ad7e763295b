"""The IVR description language: parse, check, simulate and run hotline call flows.

A script reads like a description of the service (an excerpt of demo/hotline.ivr; the steps
人工服务, 系统故障 and 留言 are left out here)::

    flow 物业服务热线:                       # header: defaults for every step
      language zh-CN
      timeout 5s
      retries 2
      operator 客服组                        # queue for runtime errors (never silence)
      hotkey 0 -> 人工服务                   # works in every menu
      on error -> 系统故障

    queue 客服组
    calendar 工作时间:
      mon-fri 08:30-18:00
      closed 2026-10-01..2026-10-07
    source 账单(account) sql "SELECT owed, due FROM bills WHERE account = :account"

    step 开始:
      if not open(工作时间) -> 留言
      say "您好，欢迎致电。"
      -> 主菜单

    menu 主菜单:
      prompt "查询物业费请按1，人工服务请按0。"
      1 -> 查询物业费
      on failure -> 人工服务

    ask 查询物业费:
      prompt "请输入六位缴费账号，以井号键结束。"
      digits 6
      end "#"
      into 账号
      on failure -> 人工服务
      on ok:
        lookup 账单信息 = 账单(账号) timeout 3s:
          on error -> 人工服务
        say "欠费金额{账单信息.owed as 金额}。"
        -> 主菜单

Shape: blocks open with ``:`` (or ``：``) and are indented; ``-> step`` is a goto; ``#``
starts a comment (the key ``#`` is written ``"#"``). Steps are ``step``, ``menu``, ``ask``
and ``sub NAME(params)`` (``call``/``return``). Statements: ``say``, ``play``, ``set``,
``tag``, ``if/elif/else``, ``lookup``, ``transfer``, ``queue``, ``record``, ``voicemail``,
``hangup``, ``->``. Prompts interpolate ``{expr as amount|date|time|digits|number}`` (or
金额/日期/时间/号码/数字). Keywords have Chinese aliases (步骤, 菜单, 询问, 说, 如果, 否则,
转到, 挂机, 排队, 转接, 录音, 查询...).

Modules: parser (lark LALR -> ast), check (+check_flow: all diagnostics at once),
interpreter (async walk against a CallHandle), simulator (FakeCall, fake clock, mocked
data, transcripts, coverage), datasources (sql/python/http), runtime (asyncio timeouts,
version-pinned script store), cli (``softswitch ivr check|test``).
"""

from __future__ import annotations

from .ast import Program, Span
from .check import check, check_source, has_errors
from .diagnostics import Diagnostic, IvrError, IvrSyntaxError, Severity, render, render_all
from .expr import IvrRuntimeError
from .interpreter import CallHandle, CallResult, DataSourceError, Interpreter, TraceEvent
from .parser import parse
from .simulator import SimOptions, coverage, simulate

__all__ = [
    "CallHandle",
    "CallResult",
    "DataSourceError",
    "Diagnostic",
    "Interpreter",
    "IvrError",
    "IvrRuntimeError",
    "IvrSyntaxError",
    "Program",
    "Severity",
    "SimOptions",
    "Span",
    "TraceEvent",
    "check",
    "check_source",
    "coverage",
    "has_errors",
    "parse",
    "render",
    "render_all",
    "simulate",
]
