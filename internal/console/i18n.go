package console

import (
	"golang.org/x/text/language"
)

// The console speaks English and Simplified Chinese: the browser's Accept-Language picks
// one at sign-in, the header's switch changes it for the session.
const (
	langEN = "en"
	langZH = "zh-CN"
)

var matcher = language.NewMatcher([]language.Tag{language.English, language.SimplifiedChinese})

// pickLang returns the language the Accept-Language header prefers.
func pickLang(accept string) string {
	tags, _, err := language.ParseAcceptLanguage(accept)
	if err != nil || len(tags) == 0 {
		return langEN
	}
	_, i, _ := matcher.Match(tags...)
	if i == 1 {
		return langZH
	}
	return langEN
}

// L translates for one page render.
type L struct{ Lang string }

// T returns the text of key in the page's language (the key itself if it has none, so a
// missing text shows up on the page and in the tests).
func (l L) T(key string) string {
	m, ok := texts[key]
	if !ok {
		return key
	}
	if l.Lang == langZH {
		return m[1]
	}
	return m[0]
}

// Other is the language the switch offers.
func (l L) Other() string {
	if l.Lang == langZH {
		return langEN
	}
	return langZH
}

// texts: key → {English, 简体中文}.
var texts = map[string][2]string{
	"app":             {"Departure tax refund console", "离境退税工作台"},
	"switch":          {"中文", "English"},
	"signout":         {"Sign out", "退出"},
	"signedout":       {"You are signed out.", "您已退出。"},
	"signin.how":      {"Sign in with a one-time link: run refundctl console with your certificate and open the link it prints within a minute.", "请使用一次性链接登录：用您的证书运行 refundctl console，并在一分钟内打开它打印的链接。"},
	"signin.bad":      {"This sign-in link is not valid: it was used already or has expired. Ask for a new one (refundctl console).", "此登录链接无效：已被使用或已过期。请重新获取（refundctl console）。"},
	"forbidden":       {"Your role may not open this page.", "您的角色无权打开此页面。"},
	"role.customs":    {"Customs officer", "海关关员"},
	"role.desk":       {"Cashier", "收银员"},
	"role.authority":  {"Tax official", "税务机关"},
	"nav.customs":     {"Export verification", "出境验核"},
	"nav.cashier":     {"Refund payment", "退税支付"},
	"nav.official":    {"Month at a glance", "月度概览"},
	"nav.declaration": {"Settlement declarations", "结算申报"},
	"nav.stores":      {"Store registry", "退税商店"},
	"port":            {"Port", "口岸"},
	"desk":            {"Desk", "柜台"},
	"error":           {"Refused", "未能办理"},

	"find.title":            {"Find forms", "查找退税申请单"},
	"find.number":           {"Form number (scan or type)", "申请单号（扫码或输入）"},
	"find.or":               {"or the traveller's document", "或旅客证件"},
	"find.submit":           {"Find", "查找"},
	"doc.type":              {"Document type", "证件类型"},
	"doc.number":            {"Document number", "证件号码"},
	"doc.country":           {"Issuing country", "签发国家/地区"},
	"doc.PASSPORT":          {"Passport", "护照"},
	"doc.HK_MACAO_PERMIT":   {"HK/Macao permit", "港澳居民来往内地通行证"},
	"doc.TAIWAN_PERMIT":     {"Taiwan permit", "台湾居民来往大陆通行证"},
	"doc.presented":         {"Document presented by the traveller", "旅客出示的证件"},
	"forms.none":            {"No forms found.", "未找到退税申请单。"},
	"form":                  {"Form", "申请单"},
	"store":                 {"Store", "商店"},
	"state":                 {"Status", "状态"},
	"purchase":              {"Purchase date", "购物日期"},
	"deadline":              {"Export deadline", "离境期限"},
	"traveller":             {"Traveller", "旅客"},
	"nationality":           {"Nationality", "国籍"},
	"line":                  {"Line", "行"},
	"goods":                 {"Goods", "商品"},
	"vat":                   {"VAT", "增值税率"},
	"qty":                   {"Quantity", "数量"},
	"amount":                {"Amount (CNY)", "金额（元）"},
	"refund":                {"Refund (CNY)", "退税额（元）"},
	"confirmqty":            {"Quantity presented", "实际出示数量"},
	"confirm.submit":        {"Confirm export", "确认验核"},
	"confirm.done":          {"Export confirmed.", "已确认验核。"},
	"risk.GREEN":            {"GREEN", "绿色"},
	"risk.RED":              {"RED: inspect the goods before confirming", "红色：确认前须查验货物"},
	"risk.inspection":       {"Inspection", "查验"},
	"inspect.PASSED":        {"Passed", "通过"},
	"inspect.FAILED":        {"Failed", "未通过"},
	"inspect.note":          {"Note", "备注"},
	"inspect.submit":        {"Record inspection", "记录查验"},
	"inspect.done":          {"Inspection recorded.", "已记录查验。"},
	"serial":                {"Serial number", "序列号"},
	"eligible":              {"Eligible amount (CNY)", "退税物品金额（元）"},
	"gross":                 {"Gross refund (CNY)", "应退税额（元）"},
	"fee":                   {"Agency fee (CNY)", "代理机构手续费（元）"},
	"net":                   {"Net refund (CNY)", "实退金额（元）"},
	"verified":              {"Verified", "已验核"},
	"why.VERIFIED":          {"Export already confirmed", "已确认离境"},
	"why.REFUNDED":          {"Already refunded", "已退税"},
	"why.SETTLED":           {"Already refunded and settled", "已退税并结算"},
	"why.VOIDED":            {"Voided by the store (goods returned)", "商店已作废（退货）"},
	"why.EXPIRED":           {"Expired: not exported within 90 days", "已过期：未在90日内离境"},
	"why.REJECTED":          {"Rejected by customs", "海关已拒绝"},
	"why.late":              {"Past the export deadline", "已超过离境期限"},
	"state.ISSUED":          {"Issued", "已开具"},
	"state.VERIFIED":        {"Verified", "已验核"},
	"state.REJECTED":        {"Rejected", "已拒绝"},
	"state.REFUNDED":        {"Refunded", "已退税"},
	"state.VOIDED":          {"Voided", "已作废"},
	"state.EXPIRED":         {"Expired", "已过期"},
	"state.SETTLED":         {"Settled", "已结算"},
	"pay.title":             {"Pay refunds", "支付退税款"},
	"pay.payable":           {"Payable here", "可在此支付"},
	"pay.otherport":         {"Confirmed at another port: pay there", "在其他口岸验核：请在该口岸支付"},
	"pay.notverified":       {"Not confirmed by customs yet", "海关尚未验核"},
	"pay.method":            {"Payment method", "支付方式"},
	"pay.CASH":              {"Cash", "现金"},
	"pay.BANK_CARD":         {"Bank card", "银行卡"},
	"pay.MOBILE":            {"Mobile payment", "移动支付"},
	"pay.account":           {"Card or wallet account (not for cash)", "银行卡或钱包账户（现金无需填写）"},
	"pay.receipt":           {"Receipt signature reference", "收款回执签名编号"},
	"pay.submit":            {"Pay", "支付"},
	"pay.cashleft":          {"Cash left under today's cap", "今日现金剩余额度"},
	"pay.cashpaid":          {"Cash paid today", "今日已付现金"},
	"pay.cap":               {"Cap", "上限"},
	"receipt.title":         {"Refund receipt", "收款回执单"},
	"receipt.print":         {"Print receipt", "打印回执"},
	"receipt.id":            {"Payout", "支付编号"},
	"receipt.paidat":        {"Paid at", "支付时间"},
	"receipt.cashier":       {"Cashier", "收银员"},
	"receipt.sign":          {"Traveller's signature", "旅客签名"},
	"receipt.feerate":       {"Fee rate", "手续费率"},
	"total":                 {"Total", "合计"},
	"month":                 {"Month", "月份"},
	"month.show":            {"Show", "显示"},
	"m.issued":              {"Issued", "开具"},
	"m.verified":            {"Verified", "验核"},
	"m.refunded":            {"Refunded", "退税"},
	"m.voided":              {"Voided", "作废"},
	"m.expired":             {"Expired", "过期"},
	"m.refundcny":           {"Refunds paid (CNY)", "已付退税（元）"},
	"m.grosscny":            {"Gross refund issued (CNY)", "开具应退税额（元）"},
	"m.xlsx":                {"Download XLSX (to sign)", "下载 XLSX（供签字）"},
	"m.trend":               {"Refunds paid, last 12 months (CNY)", "近12个月已付退税（元）"},
	"m.exceptions":          {"Reconciliation exceptions", "对账差异"},
	"dim.block":             {"By block", "按街区"},
	"dim.port":              {"By port", "按口岸"},
	"dim.agency":            {"By agency", "按代理机构"},
	"dim.nationality":       {"Top nationalities", "主要国籍"},
	"key":                   {"Key", "项目"},
	"chain":                 {"Journal chain head", "账簿哈希链头"},
	"chain.none":            {"nothing sealed yet", "尚未封存"},
	"decl.none":             {"No declarations waiting for review.", "没有待审核的结算申报。"},
	"decl.agency":           {"Agency", "代理机构"},
	"decl.by":               {"Declared by", "申报人"},
	"decl.at":               {"Declared at", "申报时间"},
	"decl.forms":            {"Forms", "单数"},
	"decl.status":           {"Status", "状态"},
	"decl.approve":          {"Approve", "批准"},
	"decl.return":           {"Return with reason", "退回（填写原因）"},
	"decl.reason":           {"Reason", "原因"},
	"decl.approved":         {"Declaration approved.", "结算申报已批准。"},
	"decl.returned":         {"Declaration returned.", "结算申报已退回。"},
	"decl.DECLARED":         {"Declared", "已申报"},
	"decl.RETURNED":         {"Returned", "已退回"},
	"decl.APPROVED":         {"Approved", "已批准"},
	"stores.search":         {"Search code or name", "按代码或名称搜索"},
	"stores.name":           {"Name", "名称"},
	"stores.block":          {"Block", "街区"},
	"stores.grade":          {"Credit grade", "信用等级"},
	"stores.immediate":      {"Immediate refund", "即买即退"},
	"stores.status":         {"Status", "状态"},
	"nav.refundpoint":       {"Immediate refunds", "即买即退"},
	"rp.pay":                {"Pay an immediate refund", "支付即买即退预付金"},
	"rp.paybutton":          {"Pay the net refund", "支付实退金额"},
	"rp.paid":               {"Prepayment paid.", "预付金已支付。"},
	"rp.returned":           {"Prepayment returned.", "预付金已退回。"},
	"rp.prepayment":         {"Prepayment", "预付金"},
	"rp.preauth":            {"Pre-authorization on the traveller's credit card", "旅客信用卡预授权"},
	"rp.token":              {"Acquirer token", "收单机构令牌"},
	"rp.last4":              {"Card last 4", "卡号后四位"},
	"rp.expiry":             {"Card expiry", "卡有效期"},
	"rp.authorized":         {"Authorized (CNY)", "预授权金额（元）"},
	"rp.agreement":          {"Agreement reference", "协议编号"},
	"rp.port":               {"Departure port", "离境口岸"},
	"rp.committed":          {"Committed departure by", "承诺离境日期"},
	"rp.capturedue":         {"Capture due if not exported", "未离境时扣款日期"},
	"rp.card":               {"Card", "信用卡"},
	"rp.return":             {"Goods returned: hand back a prepayment", "退货：退回预付金"},
	"rp.returnbutton":       {"Record the return", "登记退回"},
	"rp.captures":           {"Prepayments due for capture are captured by the server's job (RunCaptures); their list is in the API (ListAcquirerInstructions), not yet on this page.", "到期未离境的预授权由服务器任务扣款（RunCaptures）；清单见接口（ListAcquirerInstructions），本页暂不显示。"},
	"nav.params":            {"Parameters", "参数"},
	"nav.journal":           {"Journal", "账簿"},
	"params.name":           {"Parameter", "参数"},
	"params.scope":          {"Scope", "适用范围"},
	"params.national":       {"national", "全国"},
	"params.from":           {"Valid from", "生效日期"},
	"params.value":          {"Value", "取值"},
	"params.note":           {"Note (why)", "说明（依据）"},
	"params.new":            {"Set a new value from a date", "设定自某日起的新值"},
	"params.set.button":     {"Set the value", "设定"},
	"params.set":            {"Parameter set.", "参数已设定。"},
	"params.how":            {"A value holds from its date until the next value of the same parameter and scope; earlier values stay as they were for the days they covered.", "新值自生效日期起适用，直至同一参数与范围的下一个值；已过日期的取值保持不变。"},
	"journal.chain":         {"Chain", "哈希链"},
	"journal.journal":       {"Ledger journal", "记账凭证链"},
	"journal.audit":         {"Audit trail", "审计日志链"},
	"journal.seq":           {"Head #", "链头序号"},
	"journal.hash":          {"Head hash", "链头哈希"},
	"journal.verified":      {"Links verified", "已验证环节"},
	"journal.result":        {"Result", "结果"},
	"journal.ok":            {"intact", "完整"},
	"journal.broken":        {"broken at", "断裂于"},
	"journal.allok":         {"Every chain verified intact up to its head.", "所有哈希链已验证完整，直至链头。"},
	"journal.notok":         {"A chain is broken: see the row above; report it to the security officer.", "哈希链断裂：见上表；请报告安全负责人。"},
	"journal.verify":        {"Verify now", "立即验证"},
	"journal.how":           {"Verification recomputes every link of both chains from the first seal; it reads the whole history and may take a while.", "验证将从首个封存起重新计算两条链的每个环节；需读取全部历史，可能需要一些时间。"},
	"stores.registered":     {"Registered", "登记时间"},
	"stores.change":         {"Change (with reason)", "变更（须填原因）"},
	"stores.suspend":        {"Suspend", "暂停"},
	"stores.reinstate":      {"Reinstate", "恢复"},
	"stores.exit":           {"Exit", "退出"},
	"stores.changed":        {"Registry changed, effective now:", "登记已变更，即时生效："},
	"stores.effective":      {"A change takes effect when it is made; its reason and time are kept in the audit trail.", "变更即时生效；原因与时间记入审计日志。"},
	"stores.register":       {"Register a store", "登记退税商店"},
	"stores.registerbutton": {"Register", "登记"},
	"stores.credit":         {"Unified social credit code", "统一社会信用代码"},
	"store.ACTIVE":          {"Active", "正常"},
	"store.SUSPENDED":       {"Suspended", "已暂停"},
	"store.EXITED":          {"Exited", "已退出"},
	"store.UNSPECIFIED":     {"Unknown", "未知"},
	"pdf.title":             {"Departure tax refunds of the month", "离境退税月度报表"},
	"pdf.office":            {"Issuing office", "出具机关"},
	"pdf.generated":         {"Generated", "生成时间"},
	"pdf.unit":              {"amounts in CNY (yuan)", "金额单位：人民币元"},
	"pdf.none":              {"not yet confirmed or paid", "尚未验核或支付"},
	"pdf.prepared":          {"Prepared by", "制表人"},
	"pdf.approved":          {"Approved by", "审核人"},
	"pdf.date":              {"Date", "日期"},
	"m.pdf":                 {"Download PDF (to sign)", "下载 PDF（供签字）"},
	"yes":                   {"yes", "是"},
	"no":                    {"no", "否"},
}
