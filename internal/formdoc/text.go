package formdoc

// Every label of the form in every language. The Chinese wording follows the national
// form's (离境退税申请单); the others say the same for the traveller.
var text = map[string]map[Lang]string{
	"title": {
		Chinese: "离境退税申请单", English: "Departure Tax Refund Application Form", Japanese: "出国時税還付申請書",
		Korean: "출국 세금 환급 신청서", Russian: "Заявление на возврат налога при выезде", French: "Formulaire de détaxe à la sortie du territoire",
		German: "Antrag auf Steuerrückerstattung bei Ausreise", Spanish: "Formulario de devolución de impuestos a la salida", Arabic: "نموذج طلب استرداد الضريبة عند المغادرة",
	},
	"number": {
		Chinese: "申请单号", English: "Form number", Japanese: "申請番号", Korean: "신청 번호", Russian: "Номер заявления",
		French: "Numéro du formulaire", German: "Formularnummer", Spanish: "Número de formulario", Arabic: "رقم النموذج",
	},
	"store": {
		Chinese: "退税商店", English: "Tax refund store", Japanese: "免税店", Korean: "환급 매장", Russian: "Магазин",
		French: "Magasin", German: "Geschäft", Spanish: "Tienda", Arabic: "المتجر",
	},
	"credit_code": {
		Chinese: "统一社会信用代码", English: "Unified social credit code", Japanese: "統一社会信用コード", Korean: "통일사회신용코드",
		Russian: "Единый код социального кредита", French: "Code de crédit social unifié", German: "Einheitlicher Sozialkreditcode",
		Spanish: "Código de crédito social unificado", Arabic: "رمز الائتمان الاجتماعي الموحد",
	},
	"block": {
		Chinese: "退税街区", English: "Refund block", Japanese: "免税街区", Korean: "환급 거리", Russian: "Квартал возврата налога",
		French: "Quartier de détaxe", German: "Erstattungsviertel", Spanish: "Distrito de devolución", Arabic: "منطقة الاسترداد",
	},
	"purchased": {
		Chinese: "购物日期", English: "Purchase date", Japanese: "購入日", Korean: "구매일", Russian: "Дата покупки",
		French: "Date d'achat", German: "Kaufdatum", Spanish: "Fecha de compra", Arabic: "تاريخ الشراء",
	},
	"issued": {
		Chinese: "开单时间（北京时间）", English: "Issued (Beijing time)", Japanese: "発行日時（北京時間）", Korean: "발행 시각(베이징 시간)",
		Russian: "Выдано (пекинское время)", French: "Émis (heure de Pékin)", German: "Ausgestellt (Pekinger Zeit)",
		Spanish: "Emitido (hora de Pekín)", Arabic: "تاريخ الإصدار (توقيت بكين)",
	},
	"traveller": {
		Chinese: "旅客证件", English: "Traveller's document", Japanese: "旅券等", Korean: "여행자 신분증", Russian: "Документ путешественника",
		French: "Document du voyageur", German: "Reisedokument", Spanish: "Documento del viajero", Arabic: "وثيقة المسافر",
	},
	"nationality": {
		Chinese: "国籍（地区）", English: "Nationality", Japanese: "国籍", Korean: "국적", Russian: "Гражданство",
		French: "Nationalité", German: "Staatsangehörigkeit", Spanish: "Nacionalidad", Arabic: "الجنسية",
	},
	"goods": {
		Chinese: "商品", English: "Goods", Japanese: "商品", Korean: "상품", Russian: "Товар",
		French: "Article", German: "Ware", Spanish: "Artículo", Arabic: "السلعة",
	},
	"qty": {
		Chinese: "数量", English: "Qty", Japanese: "数量", Korean: "수량", Russian: "Кол-во",
		French: "Qté", German: "Menge", Spanish: "Cant.", Arabic: "الكمية",
	},
	"vat": {
		Chinese: "税率", English: "VAT", Japanese: "税率", Korean: "세율", Russian: "НДС",
		French: "TVA", German: "MwSt.", Spanish: "IVA", Arabic: "الضريبة",
	},
	"amount": {
		Chinese: "金额（元）", English: "Amount (CNY)", Japanese: "金額（元）", Korean: "금액(위안)", Russian: "Сумма (CNY)",
		French: "Montant (CNY)", German: "Betrag (CNY)", Spanish: "Importe (CNY)", Arabic: "المبلغ (يوان)",
	},
	"invoice": {
		Chinese: "发票号码", English: "Invoice", Japanese: "発票番号", Korean: "영수증 번호", Russian: "Счёт-фактура",
		French: "Facture", German: "Rechnung", Spanish: "Factura", Arabic: "الفاتورة",
	},
	"invoices": {
		Chinese: "增值税发票", English: "VAT invoices", Japanese: "増値税発票", Korean: "부가가치세 영수증", Russian: "Счета-фактуры НДС",
		French: "Factures TVA", German: "MwSt.-Rechnungen", Spanish: "Facturas de IVA", Arabic: "فواتير ضريبة القيمة المضافة",
	},
	"eligible": {
		Chinese: "退税物品销售金额", English: "Amount of refundable goods", Japanese: "還付対象商品の金額", Korean: "환급 대상 금액",
		Russian: "Сумма товаров к возврату", French: "Montant des articles détaxables", German: "Betrag der erstattungsfähigen Waren",
		Spanish: "Importe de los artículos reembolsables", Arabic: "قيمة السلع القابلة للاسترداد",
	},
	"refund": {
		Chinese: "应退税额（未扣代理手续费）", English: "Refund (before the agency's fee)", Japanese: "還付額（代理手数料控除前）",
		Korean: "환급액(대행 수수료 공제 전)", Russian: "Возврат (до комиссии агента)", French: "Remboursement (avant frais de l'agent)",
		German: "Erstattung (vor Gebühr der Agentur)", Spanish: "Devolución (antes de la comisión del agente)", Arabic: "مبلغ الاسترداد (قبل رسوم الوكيل)",
	},
	"claim": {
		Chinese: "办理地点及期限", English: "Where and by when to claim", Japanese: "手続き場所と期限", Korean: "신청 장소 및 기한",
		Russian: "Где и до какого срока получить", French: "Où et avant quand réclamer", German: "Wo und bis wann einlösen",
		Spanish: "Dónde y hasta cuándo reclamar", Arabic: "أين ومتى تطالب بالاسترداد",
	},
	"claim_text": {
		Chinese:  "请于购物之日起90日内，在下列离境口岸随身携带所购物品离境，并办理海关验核及退税：",
		English:  "Leave with the goods within 90 days of purchase through one of these ports of exit, where customs confirms the export and the refund is paid:",
		Japanese: "購入日から90日以内に、次の出国港から商品を携帯して出国し、税関確認と還付を受けてください：",
		Korean:   "구매일로부터 90일 이내에 다음 출국 항구에서 물품을 소지하고 출국하며 세관 확인 및 환급을 받으십시오:",
		Russian:  "Вывезите товары в течение 90 дней с даты покупки через один из этих пунктов пропуска, где таможня подтвердит вывоз и выплатят возврат:",
		French:   "Quittez le territoire avec les articles dans les 90 jours suivant l'achat par l'un de ces points de sortie, où la douane confirme l'exportation et le remboursement est versé :",
		German:   "Reisen Sie innerhalb von 90 Tagen nach dem Kauf mit den Waren über einen dieser Ausreiseorte aus; dort bestätigt der Zoll die Ausfuhr und die Erstattung wird ausgezahlt:",
		Spanish:  "Salga con los artículos dentro de los 90 días siguientes a la compra por uno de estos puntos de salida, donde la aduana confirma la exportación y se paga la devolución:",
		Arabic:   "غادر ومعك السلع خلال 90 يومًا من تاريخ الشراء عبر أحد منافذ المغادرة التالية، حيث تؤكد الجمارك التصدير ويُدفع الاسترداد:",
	},
	"deadline": {
		Chinese: "海关验核截止日期", English: "Customs confirmation no later than", Japanese: "税関確認の期限", Korean: "세관 확인 기한",
		Russian: "Подтверждение таможни не позднее", French: "Visa douanier au plus tard le", German: "Zollbestätigung spätestens am",
		Spanish: "Confirmación aduanera a más tardar el", Arabic: "آخر موعد لتأكيد الجمارك",
	},
	"show": {
		Chinese: "海关验核时请出示", English: "Show at customs", Japanese: "税関で提示するもの", Korean: "세관에 제시할 것",
		Russian: "Предъявите на таможне", French: "À présenter à la douane", German: "Beim Zoll vorzeigen", Spanish: "Presente en la aduana", Arabic: "اعرض على الجمارك",
	},
	"show_text": {
		Chinese:  "本申请单、本人有效身份证件、增值税发票，以及未使用的退税物品（请在办理登机手续、托运行李之前办理）。",
		English:  "This form, the identity document it was issued for, the VAT invoices and the unused goods (before you check in your luggage).",
		Japanese: "本申請書、申請時の身分証明書、増値税発票、未使用の商品（手荷物を預ける前に）。",
		Korean:   "본 신청서, 신청 시 사용한 신분증, 부가가치세 영수증, 사용하지 않은 물품(수하물 위탁 전에).",
		Russian:  "Это заявление, документ, на который оно выдано, счета-фактуры НДС и неиспользованные товары (до сдачи багажа).",
		French:   "Ce formulaire, la pièce d'identité pour laquelle il a été émis, les factures TVA et les articles non utilisés (avant l'enregistrement des bagages).",
		German:   "Dieses Formular, das Ausweisdokument, für das es ausgestellt wurde, die MwSt.-Rechnungen und die unbenutzten Waren (vor der Gepäckaufgabe).",
		Spanish:  "Este formulario, el documento de identidad para el que se emitió, las facturas de IVA y los artículos sin usar (antes de facturar el equipaje).",
		Arabic:   "هذا النموذج، ووثيقة الهوية التي صدر لها، وفواتير ضريبة القيمة المضافة، والسلع غير المستعملة (قبل تسليم الأمتعة).",
	},
	"reprint": {
		Chinese: "补打", English: "REPRINT", Japanese: "再発行", Korean: "재발행", Russian: "ПОВТОРНАЯ ПЕЧАТЬ",
		French: "RÉIMPRESSION", German: "NACHDRUCK", Spanish: "REIMPRESIÓN", Arabic: "إعادة طباعة",
	},
	"void": {
		Chinese: "已作废", English: "VOID", Japanese: "無効", Korean: "무효", Russian: "АННУЛИРОВАНО",
		French: "ANNULÉ", German: "UNGÜLTIG", Spanish: "ANULADO", Arabic: "ملغى",
	},
	"void_text": {
		Chinese: "本申请单已作废，不能办理退税。", English: "This form has been voided: no refund can be claimed with it.",
		Japanese: "この申請書は無効です。還付は受けられません。", Korean: "이 신청서는 무효이며 환급을 받을 수 없습니다.",
		Russian: "Это заявление аннулировано: возврат по нему невозможен.", French: "Ce formulaire est annulé : aucun remboursement ne peut être obtenu.",
		German:  "Dieses Formular ist ungültig: Es kann keine Erstattung damit beantragt werden.",
		Spanish: "Este formulario está anulado: no se puede obtener ninguna devolución con él.", Arabic: "هذا النموذج ملغى ولا يمكن المطالبة بأي استرداد به.",
	},
	"fee_note": {
		Chinese: "退税代理机构在支付时扣除其手续费。", English: "The refund agency deducts its fee when it pays.",
		Japanese: "還付代理機関は支払時に手数料を差し引きます。", Korean: "환급 대행 기관이 지급 시 수수료를 공제합니다.",
		Russian: "Агент по возврату удерживает комиссию при выплате.", French: "L'agent de remboursement déduit ses frais au paiement.",
		German: "Die Erstattungsagentur zieht ihre Gebühr bei der Auszahlung ab.", Spanish: "El agente de devolución descuenta su comisión al pagar.",
		Arabic: "يخصم وكيل الاسترداد رسومه عند الدفع.",
	},
}

// docTypes names the accepted documents.
var docTypes = map[string]map[Lang]string{
	"PASSPORT": {Chinese: "护照", English: "Passport", Japanese: "旅券", Korean: "여권", Russian: "Паспорт",
		French: "Passeport", German: "Reisepass", Spanish: "Pasaporte", Arabic: "جواز سفر"},
	"HK_MACAO_PERMIT": {Chinese: "港澳居民来往内地通行证", English: "Mainland Travel Permit (HK/Macao)", Japanese: "港澳居民来往内地通行証",
		Korean: "홍콩·마카오 주민 내지 통행증", Russian: "Разрешение (Гонконг/Макао)", French: "Permis (Hong Kong/Macao)",
		German: "Reisegenehmigung (Hongkong/Macau)", Spanish: "Permiso (Hong Kong/Macao)", Arabic: "تصريح السفر (هونغ كونغ/ماكاو)"},
	"TAIWAN_PERMIT": {Chinese: "台湾居民来往大陆通行证", English: "Mainland Travel Permit (Taiwan)", Japanese: "台湾居民来往大陸通行証",
		Korean: "대만 주민 대륙 통행증", Russian: "Разрешение (Тайвань)", French: "Permis (Taïwan)",
		German: "Reisegenehmigung (Taiwan)", Spanish: "Permiso (Taiwán)", Arabic: "تصريح السفر (تايوان)"},
}
