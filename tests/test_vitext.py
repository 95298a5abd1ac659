"""The Vietnamese text normaliser (loaxa.headend.vitext) on sentences of the
kind commune bulletins are made of: vaccination days, meetings, weather and
flood warnings, military service, insurance, prices, power cuts. Each expected
reading was reviewed by hand against how an announcer reads it: times
as "giờ", days 1-10 as "mồng", April as "tháng tư", ranges with "đến", the
offices' abbreviations in full, hotlines digit by digit; no digit is left."""

from __future__ import annotations

import pytest

from loaxa.headend.vitext import has_digits, normalise, prepare

BULLETINS = [
    ('UBND xã thông báo: Từ 7h00 đến 11h00 ngày 15/12/2026, tổ chức tiêm vắc-xin sởi cho trẻ từ '
     '9-24 tháng tuổi tại TYT xã.',
     'ủy ban nhân dân xã thông báo: từ bảy giờ đến mười một giờ ngày mười lăm tháng mười hai '
     'năm hai nghìn không trăm hai mươi sáu, tổ chức tiêm vắc xin sởi cho trẻ từ chín đến hai '
     'mươi tư tháng tuổi tại trạm y tế xã.'),
    ('Kính mời bà con thôn 3 đến nhà văn hóa lúc 19h30 tối nay để họp bàn kế hoạch xây dựng '
     'NTM.',
     'kính mời bà con thôn ba đến nhà văn hóa lúc mười chín giờ ba mươi tối nay để họp bàn kế '
     'hoạch xây dựng nông thôn mới.'),
    ('Theo dự báo, từ ngày 20/10 đến 22/10 khu vực có mưa to, lượng mưa phổ biến 100-150 mm.',
     'theo dự báo, từ ngày hai mươi tháng mười đến ngày hai mươi hai tháng mười khu vực có mưa '
     'to, lượng mưa phổ biến một trăm đến một trăm năm mươi mi li mét.'),
    ('BCH quân sự xã thông báo lịch khám tuyển NVQS năm 2027 vào ngày 05/01/2027.',
     'ban chỉ huy quân sự xã thông báo lịch khám tuyển nghĩa vụ quân sự năm hai nghìn không '
     'trăm hai mươi bảy vào ngày mồng năm tháng một năm hai nghìn không trăm hai mươi bảy.'),
    ('Hộ gia đình chưa đóng BHYT năm 2026 đề nghị liên hệ BHXH huyện trước ngày 31/12.',
     'hộ gia đình chưa đóng bảo hiểm y tế năm hai nghìn không trăm hai mươi sáu đề nghị liên hệ '
     'bảo hiểm xã hội huyện trước ngày ba mươi mốt tháng mười hai.'),
    ('HTX Nông nghiệp Tân Phú mua lúa với giá 7.500đ/kg, thanh toán ngay.',
     'hợp tác xã nông nghiệp tân phú mua lúa với giá bảy nghìn năm trăm đồng một ki lô gam, '
     'thanh toán ngay.'),
    ('Đ/c Trần Văn Bình, Chủ tịch UBND xã, sẽ tiếp công dân vào thứ 5 hàng tuần.',
     'đồng chí trần văn bình, chủ tịch ủy ban nhân dân xã, sẽ tiếp công dân vào thứ năm hàng '
     'tuần.'),
    ('Nhiệt độ thấp nhất 12-14 độ, vùng núi có nơi dưới 10 độ.',
     'nhiệt độ thấp nhất mười hai đến mười bốn độ, vùng núi có nơi dưới mười độ.'),
    ('Lúc 14:30 chiều nay, Đoàn kiểm tra ATTP sẽ làm việc tại chợ xã.',
     'lúc mười bốn giờ ba mươi chiều nay, đoàn kiểm tra an toàn thực phẩm sẽ làm việc tại chợ '
     'xã.'),
    ('Mức hỗ trợ là 500.000 đồng/người/tháng, áp dụng từ tháng 4/2026.',
     'mức hỗ trợ là năm trăm nghìn đồng một người một tháng, áp dụng từ tháng tư năm hai nghìn '
     'không trăm hai mươi sáu.'),
    ('Bão số 3 đang di chuyển theo hướng Tây Bắc với tốc độ 15-20 km/h.',
     'bão số ba đang di chuyển theo hướng tây bắc với tốc độ mười lăm đến hai mươi ki lô mét '
     'một giờ.'),
    ('Xã có 1.245 hộ dân, trong đó 87 hộ nghèo và 126 hộ cận nghèo.',
     'xã có một nghìn hai trăm bốn mươi lăm hộ dân, trong đó tám mươi bảy hộ nghèo và một trăm '
     'hai mươi sáu hộ cận nghèo.'),
    ('Trường THCS và trường TH xã khai giảng năm học mới lúc 7h30 ngày 5/9.',
     'trường trung học cơ sở và trường tiểu học xã khai giảng năm học mới lúc bảy giờ ba mươi '
     'ngày mồng năm tháng chín.'),
    ('Ban chỉ đạo PCTT và TKCN xã yêu cầu các thôn chủ động sơ tán dân ở vùng trũng thấp.',
     'ban chỉ đạo phòng chống thiên tai và tìm kiếm cứu nạn xã yêu cầu các thôn chủ động sơ tán '
     'dân ở vùng trũng thấp.'),
    ('Thời gian nhận hồ sơ: từ 8h đến 16h30 các ngày làm việc trong tuần.',
     'thời gian nhận hồ sơ: từ tám giờ đến mười sáu giờ ba mươi các ngày làm việc trong tuần.'),
    ('Tổng diện tích gieo cấy vụ Đông Xuân là 356,5 ha, đạt 102% kế hoạch.',
     'tổng diện tích gieo cấy vụ đông xuân là ba trăm năm mươi sáu phẩy năm héc ta, đạt một '
     'trăm lẻ hai phần trăm kế hoạch.'),
    ('Mỗi người dân uống 2 viên/ngày trong 5 ngày liên tục theo hướng dẫn của TTYT huyện.',
     'mỗi người dân uống hai viên một ngày trong năm ngày liên tục theo hướng dẫn của trung tâm '
     'y tế huyện.'),
    ('Hội LHPN xã tổ chức hội thi nấu ăn vào ngày 8/3 tại hội trường UBND xã.',
     'hội liên hiệp phụ nữ xã tổ chức hội thi nấu ăn vào ngày mồng tám tháng ba tại hội trường '
     'ủy ban nhân dân xã.'),
    ('Ngày 30/4 và 1/5, các cơ quan nghỉ lễ theo quy định.',
     'ngày ba mươi tháng tư và ngày mồng một tháng năm, các cơ quan nghỉ lễ theo quy định.'),
    ('Đề nghị các hộ nuôi gia cầm tiêm phòng cúm đợt 1 năm 2026 trước ngày 10/4.',
     'đề nghị các hộ nuôi gia cầm tiêm phòng cúm đợt một năm hai nghìn không trăm hai mươi sáu '
     'trước ngày mồng mười tháng tư.'),
    ('Điểm cấp nước sạch tạm ngừng hoạt động từ 6h ngày 12/8 để sửa chữa đường ống.',
     'điểm cấp nước sạch tạm ngừng hoạt động từ sáu giờ ngày mười hai tháng tám để sửa chữa '
     'đường ống.'),
    ('HĐND xã khóa XII tổ chức kỳ họp thứ 9 vào ngày 25-26/12/2026.',
     'hội đồng nhân dân xã khóa mười hai tổ chức kỳ họp thứ chín vào ngày hai mươi lăm đến hai '
     'mươi sáu tháng mười hai năm hai nghìn không trăm hai mươi sáu.'),
    ('Mọi thông tin xin liên hệ SĐT 0912.345.678 hoặc đường dây nóng 1900 1234.',
     'mọi thông tin xin liên hệ số điện thoại không chín một hai ba bốn năm sáu bảy tám hoặc '
     'đường dây nóng một chín không không một hai ba bốn.'),
    ('Cảnh báo: mực nước sông lúc 17h hôm nay đạt 4,2 m, trên báo động 2 là 0,2 m.',
     'cảnh báo: mực nước sông lúc mười bảy giờ hôm nay đạt bốn phẩy hai mét, trên báo động hai '
     'là không phẩy hai mét.'),
    ('Lớp tập huấn PCCC cho 50 hộ kinh doanh sẽ khai giảng ngày 2/11.',
     'lớp tập huấn phòng cháy chữa cháy cho năm mươi hộ kinh doanh sẽ khai giảng ngày mồng hai '
     'tháng mười một.'),
    ('UBMTTQ xã phát động ủng hộ đồng bào bị lũ lụt, mỗi suất 200.000đ.',
     'ủy ban mặt trận tổ quốc xã phát động ủng hộ đồng bào bị lũ lụt, mỗi suất hai trăm nghìn '
     'đồng.'),
    ('Xe thu gom rác sẽ đi qua thôn 1, thôn 2 lúc 6h30 sáng thứ 2, thứ 4 và thứ 6.',
     'xe thu gom rác sẽ đi qua thôn một, thôn hai lúc sáu giờ ba mươi sáng thứ hai, thứ tư và '
     'thứ sáu.'),
    ('Đến nay đã có 95% số hộ tham gia BHYT, tăng 3,5% so với năm 2025.',
     'đến nay đã có chín mươi lăm phần trăm số hộ tham gia bảo hiểm y tế, tăng ba phẩy năm phần '
     'trăm so với năm hai nghìn không trăm hai mươi lăm.'),
    ('CA xã đề nghị người dân không đốt rơm rạ gần đường giao thông, đảm bảo ATGT.',
     'công an xã đề nghị người dân không đốt rơm rạ gần đường giao thông, đảm bảo an toàn giao '
     'thông.'),
    ('Ngày hội Đại đoàn kết toàn dân tộc được tổ chức vào 18/11 tại các KDC.',
     'ngày hội đại đoàn kết toàn dân tộc được tổ chức vào ngày mười tám tháng mười một tại các '
     'khu dân cư.'),
    ('Lịch cắt điện: từ 7h30 đến 17h ngày 03/06/2026, khu vực thôn 5 và thôn 6.',
     'lịch cắt điện: từ bảy giờ ba mươi đến mười bảy giờ ngày mồng ba tháng sáu năm hai nghìn '
     'không trăm hai mươi sáu, khu vực thôn năm và thôn sáu.'),
    ('Chiến dịch diệt lăng quăng, bọ gậy diễn ra từ ngày 10-15/7.',
     'chiến dịch diệt lăng quăng, bọ gậy diễn ra từ ngày mồng mười đến mười lăm tháng bảy.'),
]


@pytest.mark.parametrize("text,spoken", BULLETINS, ids=[f"s{i}" for i in range(len(BULLETINS))])
def test_bulletin_sentences_read_as_a_listener_expects(text, spoken):
    got = normalise(text)
    assert got == spoken
    assert not has_digits(got)


def test_the_issue_examples():
    assert normalise("7h30") == "bảy giờ ba mươi"
    assert normalise("15/12") == "ngày mười lăm tháng mười hai"
    assert normalise("UBND") == "ủy ban nhân dân"


@pytest.mark.parametrize("text,prepared", [
    ("7h", "7 giờ"), ("7g30", "7 giờ 30"), ("14:00", "14 giờ"), ("9h05", "9 giờ 5"),
    ("6-12 tháng tuổi", "6 đến 12 tháng tuổi"),  # a range, not the 6th of December
    ("tháng 4", "tháng tư"),
    ("ngày 1/5", "ngày mồng một tháng năm"),
    ("CAO", "CAO"), ("THCSX", "THCSX"),  # an abbreviation only as a whole word
    ("giá 1.000đ/kg", "giá 1.000đ một ki lô gam"),  # đ after a number: the library
])
def test_the_rewrites_before_the_library(text, prepared):
    assert prepare(text) == prepared


def test_odd_input_is_read_not_refused():
    assert normalise("") == ""
    assert normalise("  \n\t ") == ""
    assert normalise("32/13") and normalise("25:99")  # not a date, not a time: still words
